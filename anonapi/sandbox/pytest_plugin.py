"""pytest fixtures that start a sandbox server; loaded through the pytest11 entry point.

Nothing heavy is imported at module level, so that installing anonapi without
the sandbox extra does not break other projects' test runs.
"""
