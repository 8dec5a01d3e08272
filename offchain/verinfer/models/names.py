"""Model names: the one rule for what a registry name may be (ModelRegistry.registerModel enforces it too)."""

import re

NAME_RULE = (
    "1 to 64 bytes of lowercase ASCII letters, digits, '-', '_' and '.', starting with a letter or digit"
)
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def model_name_problem(name: str) -> str | None:
    """None for a valid model name, otherwise one line saying why it is not ('@' is the version separator)."""
    if _NAME.fullmatch(name):
        return None
    hint = " ('@' separates NAME@VERSION)" if "@" in name else ""
    return f"model name {name!r} is not valid: a name is {NAME_RULE}{hint}"
