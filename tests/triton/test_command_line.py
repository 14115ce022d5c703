"""`takeoff triton`'s flags and its one-line refusals, and the text a refused Triton request
carries: no PyTriton needed."""
from __future__ import annotations

import traceback

from takeoff.cli import main
from takeoff.errors import bad_request
from takeoff.triton import command
from takeoff.triton.options import configs_from
from takeoff.triton.parameters import Refused


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


def test_flags_and_variables_reach_both_configs():
    environ = {"TAKEOFF_MAX_NUM_SEQS": "3", "TAKEOFF_GRPC_PORT": "9001", "TAKEOFF_PORT": "0",
               "TAKEOFF_API_KEY": "k"}
    config, options = configs_from({"model": "m", "http_port": 9000}, environ)
    assert (config.model, config.max_num_seqs, config.api_key) == ("m", 3, None)
    assert (options.host, options.http_port, options.grpc_port, options.metrics_port) == \
        ("127.0.0.1", 9000, 9001, 8002)


def test_a_refusal_reads_as_one_line_without_a_traceback():
    def callable_that_refuses():
        raise Refused(bad_request("'sampling_topp': must be at most 1", "sampling_topp"))

    try:
        callable_that_refuses()
    except Refused as exc:
        # What PyTriton sends the client: format_exception of what the callable raised.
        text = "".join(traceback.format_exception(None, exc, exc.__traceback__))
    assert text == "takeoff.triton.parameters.Refused: 400 invalid_request_error: " \
                   "'sampling_topp': must be at most 1\n"
