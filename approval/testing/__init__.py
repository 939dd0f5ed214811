"""Stand-ins for Slack used by the tests and the demo: a fake Web API and signed clicks."""
