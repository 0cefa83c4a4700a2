"""Stage functions shared by every driver: route and batch work, convert, assemble, plan a run."""
