"""`takeoff triton`'s flags and its one-line refusals: no PyTriton needed."""
from __future__ import annotations

import pytest

from takeoff.cli import main
from takeoff.triton import command
from takeoff.triton.options import configs_from


def test_without_pytriton_the_command_says_what_is_missing_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(command, "wheel_misfit", lambda: None)
    monkeypatch.setattr(command.importlib.util, "find_spec",
                        lambda name: None if name == "pytriton" else object())
    assert main(["triton", "--model", "x"]) == 2
    error = capsys.readouterr().err
    assert error == "takeoff triton: error: nvidia-pytriton not installed: pip install -e " \
                    "'.[triton]'\n"


def test_where_the_wheel_cannot_run_the_command_says_why(monkeypatch, capsys):
    monkeypatch.setattr(command, "wheel_misfit",
                        lambda: "PyTriton has a wheel for Linux x86_64 only (this is darwin arm64)")
    assert main(["triton", "--model", "x"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_help_lists_the_model_flags_and_triton_s_not_the_http_servers(capsys):
    with pytest.raises(SystemExit):
        main(["triton", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert help_text.startswith("usage: takeoff triton")
    for shown in ("--max-num-seqs MAX_NUM_SEQS generations decoding at once, i.e. KV-cache slots "
                  "(default: 64) [env TAKEOFF_MAX_NUM_SEQS]",
                  "--grpc-port GRPC_PORT Triton's gRPC port: KServe v2 infer and streaming "
                  "(default: 8001) [env TAKEOFF_GRPC_PORT]",
                  "--host HOST address Triton's HTTP, gRPC and metrics endpoints listen on"):
        assert shown in help_text
    for absent in ("--api-key", "--port ", "--openai-port", "--feedback-app", "0.0.0.0"):
        assert absent not in help_text


def test_flags_and_variables_reach_both_configs():
    environ = {"TAKEOFF_MAX_NUM_SEQS": "3", "TAKEOFF_GRPC_PORT": "9001", "TAKEOFF_PORT": "0",
               "TAKEOFF_API_KEY": "k"}
    config, options = configs_from({"model": "m", "http_port": 9000}, environ)
    assert (config.model, config.max_num_seqs, config.api_key) == ("m", 3, None)
    assert (options.host, options.http_port, options.grpc_port, options.metrics_port) == \
        ("127.0.0.1", 9000, 9001, 8002)


def test_a_bad_port_is_refused_naming_the_flag(capsys):
    assert main(["triton", "--model", "m", "--grpc-port", "8000"]) == 2
    assert capsys.readouterr().err == "takeoff triton: error: --http-port, --grpc-port and " \
                                      "--metrics-port must differ\n"
