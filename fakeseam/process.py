"""Starting and stopping the local servers that the demo and the tests run beside the dashboard."""

import socket
import subprocess
import time


def wait_listening(process: subprocess.Popen, port: int, what: str, timeout: float) -> None:
    """Returns once something listens on 127.0.0.1:port; raises if the process exits first or
    the time runs out (and then stops it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    terminate(process)
    raise RuntimeError(f"{what} did not listen on {port} in {timeout} s")


def terminate(process: subprocess.Popen | None, timeout: float = 10) -> None:
    """Asks the process to stop, and kills it if it has not within the timeout."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
