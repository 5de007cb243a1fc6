"""`python -m optlab` runs the command line."""

from optlab.cli.main import run

if __name__ == "__main__":
    run()
