"""Framework integrations, each imported only when used (the framework is an optional dependency)."""
