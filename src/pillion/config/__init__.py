"""Configuration: the models of ``pillion.yaml``, its units, and the loader.

The bottom layer: imports nothing else of Pillion's.
"""

from pillion.config.errors import EXIT_BAD_CONFIG, ConfigError, ConfigIssue
from pillion.config.loader import load_config, parse_config, parse_config_file, read_config_file
from pillion.config.models import PillionConfig

__all__ = [
    "EXIT_BAD_CONFIG",
    "ConfigError",
    "ConfigIssue",
    "PillionConfig",
    "load_config",
    "parse_config",
    "parse_config_file",
    "read_config_file",
]
