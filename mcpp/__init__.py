"""mcpp — a Cedar-style policy language, analyzer and gateway for MCP tool calls.

Installed as the distribution `mcpp-policy` (`pip install mcpp-policy`); the command and
this import package are `mcpp`.
"""

__version__ = "0.1.0"
DISTRIBUTION = "mcpp-policy"
