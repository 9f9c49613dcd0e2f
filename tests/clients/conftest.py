"""A fresh `streamhouse serve` per test module, on the backends the runner
selected, stopped with SIGTERM afterwards and required to exit 0; or, for
the modules marked `cluster`, several agents sharing PostgreSQL + S3. On the
embedded backends the `cluster` tests are deselected (and the run says so),
since agents there cannot share anything."""

import pytest

from cluster import Cluster, shared_backends
from streamhouse import StreamHouse, backend_label, binary

# The servers of a module, whose logs a failing test of it reports.
_SERVERS = pytest.StashKey[list[StreamHouse]]()
_DESELECTED = pytest.StashKey[int]()
CLUSTER_SIZE = 3
# user_properties tests record for the summary at the end.
SUMMARY_PROPERTIES = ("crash_safety", "cluster", "outage")


def pytest_report_header(config):
    header = [f"streamhouse: {binary()}", f"backends: {backend_label()}"]
    if not shared_backends():
        header.append("tests marked 'cluster' are deselected: they need PostgreSQL + S3")
    return header


def pytest_collection_modifyitems(config, items):
    if shared_backends():
        return
    deselected = [item for item in items if item.get_closest_marker("cluster")]
    if deselected:
        items[:] = [item for item in items if not item.get_closest_marker("cluster")]
        config.hook.pytest_deselected(items=deselected)
        config.stash[_DESELECTED] = len(deselected)


@pytest.fixture(scope="module")
def server_logs(request) -> list[StreamHouse]:
    """Servers whose log tails are added to the report of a failing test of
    the module; fixtures that start servers append them."""
    servers: list[StreamHouse] = []
    request.node.stash[_SERVERS] = servers
    return servers


@pytest.fixture(scope="module")
def server(request, tmp_path_factory, server_logs):
    data_dir = tmp_path_factory.mktemp(request.module.__name__)
    agent = StreamHouse(data_dir, data_dir / "streamhouse.log")
    server_logs.append(agent)
    agent.start()
    yield agent
    status = agent.stop()
    assert status == 0, (
        f"streamhouse exited with status {status} after SIGTERM (expected 0)\n" + agent.log_tail()
    )


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory, server_logs):
    """CLUSTER_SIZE agents on the runner's PostgreSQL database and S3 prefix,
    each listing all of them as brokers. Tests that kill an agent start it
    again before they end."""
    cluster = Cluster.start(tmp_path_factory.mktemp(request.module.__name__), CLUSTER_SIZE)
    server_logs.extend(cluster.agents)
    yield cluster
    statuses = cluster.stop()
    failed = {agent: status for agent, status in statuses.items() if status != 0}
    assert not failed, f"exit statuses after SIGTERM (expected 0): {failed}\n{cluster.logs()}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        servers = _module_servers(item)
        lines = 120 if len(servers) == 1 else 60
        for agent in servers:
            name = f"streamhouse log ({agent.agent_id})" if agent.agent_id else "streamhouse log"
            report.sections.append((name, agent.log_tail(lines)))
    return report


def _module_servers(item) -> list[StreamHouse]:
    for node in item.listchain():
        if _SERVERS in node.stash:
            return node.stash[_SERVERS]
    return []


def pytest_terminal_summary(terminalreporter, config):
    for report in terminalreporter.getreports("passed") + terminalreporter.getreports("failed"):
        for name, value in report.user_properties:
            if name in SUMMARY_PROPERTIES:
                terminalreporter.write_line(f"{name.replace('_', ' ')}: {value}")
    deselected = config.stash.get(_DESELECTED, 0)
    if deselected:
        terminalreporter.write_line(
            f"{deselected} test(s) marked 'cluster' deselected: they need PostgreSQL + S3 "
            "(several agents sharing one database and one object store prefix)"
        )
