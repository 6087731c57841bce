"""Client for IDIS anonymization servers, with the ``anon`` command line tool."""

__version__ = "3.0.0"
