"""mcpp — a Cedar-style policy language, analyzer and gateway for MCP tool calls."""

__version__ = "0.1.0"
