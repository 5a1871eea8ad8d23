"""The open robot world-model package: a Self-Flow video-action diffusion transformer for robots."""

__version__ = "0.1.0"
