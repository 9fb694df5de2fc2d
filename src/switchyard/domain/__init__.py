"""Pure logic of the configuration domain: values, validation, resolution, diffs. No I/O."""

__all__: list[str] = []
