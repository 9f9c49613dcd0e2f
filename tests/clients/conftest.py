"""A fresh `streamhouse serve` per test module, on the backends the runner
selected, stopped with SIGTERM afterwards and required to exit 0."""

import pytest

from streamhouse import StreamHouse, backend_label, binary

# The server of a module, found again when one of its tests fails.
_SERVERS = pytest.StashKey[StreamHouse]()


def pytest_report_header(config):
    return [f"streamhouse: {binary()}", f"backends: {backend_label()}"]


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(request.module.__name__)
    agent = StreamHouse(data_dir, data_dir / "streamhouse.log")
    request.node.stash[_SERVERS] = agent
    agent.start()
    yield agent
    status = agent.stop()
    assert status == 0, (
        f"streamhouse exited with status {status} after SIGTERM (expected 0)\n" + agent.log_tail()
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        agent = _module_server(item)
        if agent is not None:
            report.sections.append(("streamhouse server log", agent.log_tail(120)))
    return report


def _module_server(item):
    for node in item.listchain():
        if _SERVERS in node.stash:
            return node.stash[_SERVERS]
    return None


def pytest_terminal_summary(terminalreporter):
    for report in terminalreporter.getreports("passed"):
        for name, value in report.user_properties:
            if name == "crash_safety":
                terminalreporter.write_line(f"crash safety: {value}")
