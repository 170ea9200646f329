"""The upstream proxy: other simple indexes this one serves names it never held from (no Pyramid here)."""
