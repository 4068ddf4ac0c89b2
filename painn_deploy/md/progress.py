"""Progress of a long run: a bar (steps, ns/day, ETA) on a terminal, plain lines otherwise."""

import sys
import time


class Progress:
    def __init__(self, total_steps: int, start_step: int, mode: str = "auto", label: str = ""):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode
        self.total = total_steps
        self.start = start_step
        self.t0 = time.perf_counter()
        self.bar, self.label = None, label
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, desc=label.strip() or None
            )

    def update(self, step: int, ns_per_day: float, temperature_K: float) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(f"{ns_per_day:.2f} ns/day, T={temperature_K:.0f} K")
        elif self.mode == "lines":
            elapsed = time.perf_counter() - self.t0
            done = step - self.start
            eta = elapsed / done * (self.total - step) if done else float("nan")
            print(
                f"{self.label}step {step}/{self.total} ({100.0 * step / max(self.total, 1):.1f}%)  {ns_per_day:.2f} ns/day  "
                f"T={temperature_K:.0f} K  ETA {_hms(eta)}",
                flush=True,
            )

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _hms(seconds: float) -> str:
    if seconds != seconds:
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
