"""Subcommands of the pdeop command line, one module each."""
