"""Foreign checkpoint formats, one file each: how their keys map onto clapkit's module tree."""
