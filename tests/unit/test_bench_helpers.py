"""The bench scripts import, and their pure helpers (statistics, parsing, variants) are right.

No figure is asserted here: the benches print them, bench/RESULTS.md records them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shlex
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import server_guard
from bench import common, host_install, large_artifact, load, stack
from tests.support.loopback import LoopbackStack, host_file_contents, loopback_settings
from userdata import layout, sizing

BENCH_MODULES = ["common", "host_install", "stack", "load", "install_time", "boot_time", "memory", "throughput",
                 "large_artifact"]


@pytest.mark.parametrize("name", BENCH_MODULES)
def test_every_bench_module_imports(name):
    module = importlib.import_module(f"bench.{name}")
    if name not in ("common", "host_install", "stack", "load"):
        assert callable(module.main)


def test_summary_is_median_min_max_and_count():
    summary = common.summarize([3.0, 1.0, 10.0, 2.0])
    assert (summary.median, summary.minimum, summary.maximum, summary.runs) == (2.5, 1.0, 10.0, 4)
    assert summary.show(1) == "2.5 (min 1.0, max 10.0, n=4)"


def test_summary_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        common.summarize([])


def test_percentile_interpolates_between_closest_ranks():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert common.percentile(values, 0.5) == pytest.approx(50.5)
    assert common.percentile(values, 0.95) == pytest.approx(95.05)
    assert common.percentile(values, 0.99) == pytest.approx(99.01)
    assert common.percentile([7.0], 0.99) == 7.0
    assert common.percentile([5.0, 1.0], 0.0) == 1.0
    assert common.percentile([5.0, 1.0], 1.0) == 5.0


def test_percentile_rejects_a_fraction_outside_zero_to_one():
    with pytest.raises(ValueError):
        common.percentile([1.0], 95)


def test_ratio_of_zero_denominator_is_infinite():
    assert common.ratio(1.0, 4.0) == 0.25
    assert common.ratio(1.0, 0.0) == float("inf")


def test_table_pads_columns_and_rejects_ragged_rows():
    table = common.format_table(["a", "long header"], [[1, "x"], ["wide cell", 2]])
    assert table.splitlines() == [
        "| a         | long header |",
        "|-----------|-------------|",
        "| 1         | x           |",
        "| wide cell | 2           |",
    ]
    with pytest.raises(ValueError):
        common.format_table(["a", "b"], [[1]])


def test_smaps_rollup_fields_are_read_in_kib():
    text = ("55d0c0000000-7ffd00000000 ---p 00000000 00:00 0    [rollup]\n"
            "Rss:              275724 kB\nPss:              223112 kB\nPss_Anon:         180000 kB\n")
    assert common.parse_smaps_rollup(text) == {"Rss": 275724, "Pss": 223112, "Pss_Anon": 180000}


def test_cpu_ticks_come_from_utime_stime_and_reaped_children():
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
    stat = "42 (odd) name)) S 1 42 42 0 -1 4194304 10 0 0 0 7 3 20 5 20 0 1 0"
    assert common.parse_stat_cpu_ticks(stat) == 7 + 3 + 20 + 5


def test_this_process_is_measurable():
    assert common.memory_kib(os.getpid())["Pss"] > 0
    assert common.cpu_seconds([os.getpid()]) > 0
    assert common.process_tree(os.getpid())[0] == os.getpid()


def test_machine_facts_name_cpu_and_os():
    assert common.cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    assert common.os_name('NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n') == "Ubuntu 24.04.1 LTS"
    assert set(common.machine_facts()) >= {"date", "cpus", "cpu", "memory", "os", "python", "mlflow", "nginx"}


def test_install_script_is_the_rendered_one_with_only_its_paths_moved(tmp_path):
    rendered = host_file_contents(loopback_settings())[layout.INSTALL_SCRIPT]
    assert host_install.rendered_install_script() == rendered
    script = host_install.write_install_script(tmp_path, cache=tmp_path / "cache").read_text()
    for host_path in (layout.VENV_DIR, layout.UV_DIR, layout.UV_CACHE_DIR):
        assert host_path not in script
    assert f"venv={tmp_path}/venv" in script
    assert f"UV_CACHE_DIR={tmp_path}/cache" in script
    assert script.replace(str(tmp_path), "").count("python3") == rendered.count("python3")


def test_install_environment_ignores_pip_config_and_local_wheels(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    monkeypatch.setenv("UV_INDEX_URL", "file:///opt/pypi/simple")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = host_install.clean_environment(pip_cache=tmp_path)
    assert "PIP_FIND_LINKS" not in env and "UV_INDEX_URL" not in env and "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PIP_CONFIG_FILE"] == os.devnull
    assert env["PIP_CACHE_DIR"] == str(tmp_path)


@pytest.mark.parametrize("variant", sorted(stack.NGINX_VARIANTS))
def test_every_nginx_variant_still_applies_to_the_rendered_files(variant):
    files = host_file_contents(loopback_settings())
    edited = dict(files)
    stack.apply_variant(edited, variant)
    changed = {path for path in files if files[path] != edited[path]}
    assert changed == {path for path, _, _ in stack.NGINX_VARIANTS[variant]}


def test_buffered_variant_turns_both_bufferings_on():
    files = host_file_contents(loopback_settings())
    stack.apply_variant(files, "buffered")
    snippet = files[layout.NGINX_PROXY_SNIPPET]
    assert "proxy_request_buffering on;" in snippet and "proxy_buffering on;" in snippet


def test_plain_server_is_the_rendered_exec_start_without_auth_on_its_own_port():
    loopback = LoopbackStack(start=False, instance_memory_mib=2048)
    try:
        plain = stack.PlainServer(loopback)
        command = plain.command()
        rendered = shlex.split(loopback.remap(loopback.unit["ExecStart"][0]))
        assert "--app-name" not in command and "basic-auth" not in command
        assert command[command.index("--port") + 1] == str(plain.port)
        assert str(loopback.mlflow_port) not in " ".join(command)
        assert len(command) == len(rendered) - 2
        assert stack.rendered_workers(loopback) == sizing.uvicorn_workers(2048)
    finally:
        loopback.close()


def test_load_bodies_are_mlflow_rest_requests():
    metric = load.log_metric_body("run1", 3, 7)
    assert metric["run_id"] == "run1" and metric["key"] == "bench_t3" and metric["step"] == 7
    batch = load.log_batch_body("run1", 3, 7)
    assert len(batch["metrics"]) == load.BATCH_METRICS
    assert len({m["key"] for m in batch["metrics"]}) == load.BATCH_METRICS


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client asks to close
    bodies: list[dict[str, object]] = []
    connection_headers: list[str] = []
    lock = threading.Lock()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            self.bodies.append(body)
            self.connection_headers.append(self.headers.get("Connection", ""))
        self.send_response(200 if body["step"] % 5 else 500)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def _recorded_load(**options: Any) -> load.LoadResult:
    _Recorder.bodies.clear()
    _Recorder.connection_headers.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        return load.run_load(uri, ("u", "p"), "log_metric", "run1", max_seconds=30, **options)
    finally:
        server.shutdown()
        server.server_close()


def test_load_stops_at_its_request_count_and_counts_errors():
    result = _recorded_load(threads=4, max_requests=40)
    assert len(_Recorder.bodies) == 40  # 10 per thread
    assert result.errors == 8  # steps 0 and 5 of each thread answer 500
    assert result.requests == 32 == len(result.latencies)
    assert "HTTP 500" in result.first_error
    assert result.latency_ms(0.5) > 0
    assert set(_Recorder.connection_headers) == {"keep-alive"}


def test_load_with_fresh_connections_asks_to_close_every_one():
    result = _recorded_load(threads=2, max_requests=6, fresh_connections=True)
    assert result.requests + result.errors == 6
    assert _Recorder.connection_headers and set(_Recorder.connection_headers) == {"close"}


def test_random_file_digest_matches_its_bytes(tmp_path):
    path = tmp_path / "blob"
    digest = large_artifact.write_random_file(path, large_artifact.CHUNK + 123, seed=1)
    assert path.stat().st_size == large_artifact.CHUNK + 123
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest() == large_artifact.sha256_of(path)
    assert large_artifact.megabytes_per_second(2_000_000, 2.0) == 1.0


def test_install_script_experiment_flips_only_the_bytecode_flag():
    rendered = host_install.rendered_install_script()
    compiled = host_install.rendered_install_script(compile_bytecode=True)
    plain = host_install.rendered_install_script(compile_bytecode=False)
    assert compiled.count("--compile-bytecode") == 1
    assert "--compile-bytecode" not in plain
    assert rendered in (compiled, plain)
    assert compiled.replace(" --compile-bytecode", "") == plain
    assert host_install.renders_compiled() == (rendered == compiled)


def test_the_rendered_bytecode_cache_is_found_inside_the_loopback_tree():
    loopback = LoopbackStack(start=False)
    try:
        prefix = stack.rendered_pycache_prefix(loopback)
        assert prefix is not None
        assert prefix == loopback.path(layout.PYCACHE_DIR)
        assert str(prefix).startswith(str(loopback.root))
    finally:
        loopback.close()


def test_the_unguarded_server_is_the_rendered_exec_start_with_mlflows_own_basic_auth():
    loopback = LoopbackStack(start=False, instance_memory_mib=2048)
    try:
        unguarded = stack.PlainServer(loopback, "basic-auth")
        command = unguarded.command()
        rendered = shlex.split(loopback.remap(loopback.unit["ExecStart"][0]))
        assert command[command.index("--app-name") + 1] == "basic-auth"
        assert rendered[rendered.index("--app-name") + 1] == server_guard.APP_NAME
        assert len(command) == len(rendered)
    finally:
        loopback.close()
