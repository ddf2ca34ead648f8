"""Integration tests of project workspaces against a real hub and real containers."""
