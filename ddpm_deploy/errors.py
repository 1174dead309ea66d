"""The one exception type that the CLI turns into a one-line message and a non-zero exit."""

import numbers


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and what to do."""


def require_positive(**options: float | None) -> None:
    """Raise a UserError naming the first option (as --its-flag) that is set but not positive."""
    for name, value in options.items():
        if value is not None and value <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")


def is_integer(value: object) -> bool:
    """An int or a numpy integer, not a bool: the API's counts (True is no step count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
