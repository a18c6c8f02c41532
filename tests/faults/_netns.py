"""A network namespace joined to this one by a veth pair, for partitioning a worker from its
driver: the test addresses only what it created here, and removes it afterwards."""

from __future__ import annotations

import secrets
import subprocess


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Namespace:
    """``ip netns`` ``name`` with a veth pair: ``host_ip`` here, ``ns_ip`` inside."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name, self._host_link, self._ns_link = f"ospk-{tag}", f"ospk-h{tag}", f"ospk-w{tag}"
        octet = int(tag[:2], 16) % 200 + 20
        self.host_ip, self.ns_ip = f"10.231.{octet}.1", f"10.231.{octet}.2"
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self._host_link, "type", "veth", "peer", "name", self._ns_link)
            _ip("link", "set", self._ns_link, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self._host_link)
            _ip("link", "set", self._host_link, "up")
            _ip(
                "netns",
                "exec",
                self.name,
                "ip",
                "addr",
                "add",
                f"{self.ns_ip}/30",
                "dev",
                self._ns_link,
            )
            _ip("netns", "exec", self.name, "ip", "link", "set", self._ns_link, "up")
            _ip("netns", "exec", self.name, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def partition(self) -> None:
        """Cut the link (a partition: packets vanish, nothing is refused)."""
        _ip("link", "set", self._host_link, "down")

    def heal(self) -> None:
        _ip("link", "set", self._host_link, "up")

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self._host_link], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
