"""Fast tests that need no server (a package, so that their module names differ from their
served counterparts' one folder up)."""
