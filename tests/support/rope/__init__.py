"""The RoPE tests' yardstick: a reference forward pass and how engines are compared with it."""
