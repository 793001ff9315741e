"""Bundled default data: a generated multi-silo churn case and a real public churn table."""
