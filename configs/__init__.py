"""The hydra configs of the ``worldmodel`` commands (YAML presets and overrides; the defaults are the config
dataclasses'). A package only so that a wheel ships this folder beside ``worldmodel/``, where
:func:`worldmodel.config_utils.config_dir` finds it."""
