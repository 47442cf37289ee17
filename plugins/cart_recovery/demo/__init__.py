"""A demo shop: a bilingual cooperative of independent Quebec bookstores, written as landing files
(contract §2). Used by the README's main command, the tests and the benchmarks."""

from cart_recovery.demo.generate import generate, generate_cart_events_file

__all__ = ["generate", "generate_cart_events_file"]
