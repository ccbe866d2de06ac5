import pathlib
import subprocess
import sys

from conftest import REPO, plugin_path


def test_checkout_example():
    plugin_path("checkout")
    script = REPO / "examples" / "checkout" / "python" / "checkout.py"
    out = subprocess.run([sys.executable, str(script)], check=True, capture_output=True, text=True).stdout
    assert out.splitlines() == [
        "new customer: cart 120.00, discount 20.0%, pays 96.00",
        "returning customer: cart 120.00, discount 0.0%, pays 120.00",
    ]
