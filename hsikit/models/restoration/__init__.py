"""Restoration heads: cube in, cube out (``(B, C, H, W)`` → ``(B, C, sH, sW)``)."""
