"""Config stage: TOML files in, frozen validated dataclasses out.

``agent.py`` reads the agent config (``otelbpf.toml``), ``program.py`` one program config
(``NAME.toml`` beside ``NAME.bpf.o``), ``validate.py`` checks a program config against the maps
its object declares. ``tables.py`` is the strict TOML table reader they share and
``environment.py`` the OTEL_* variables. Every problem is a ``ConfigError`` naming the file,
the entry and the field; a file's problems are raised together as ``ConfigErrors``.
"""

from otelbpf.config.agent import AgentConfig, default_config_path, load_agent_config
from otelbpf.config.program import ProgramConfig, load_program_config
from otelbpf.config.validate import validate_against_object

__all__ = ["AgentConfig", "ProgramConfig", "default_config_path", "load_agent_config",
           "load_program_config", "validate_against_object"]
