"""A local IDIS-compatible anonymization server for trying anonapi and for tests."""
