"""The explorer's indexer on the session's anvil: a deployment record, an RPC and stores to index into."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ape
import pytest
from verinfer.chain.deployment import Deployment
from verinfer.chain.rpc import Rpc
from verinfer.explorer.indexer import Indexer
from verinfer.explorer.store import DATA_TABLES, ExplorerStore

from scripts.deploy import write_record
from tests.explorer.scenario import Played, play


@pytest.fixture(scope="session")
def rpc_url() -> str:
    return str(ape.chain.provider.uri)


@pytest.fixture(scope="session")
def deployment_file(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("deploy") / "local.json"
    write_record(path, stack, {})
    return path


@pytest.fixture(scope="session")
def deployment(deployment_file: Path) -> Deployment:
    return Deployment.load(deployment_file)


@pytest.fixture
def make_indexer(rpc_url: str, deployment: Deployment, tmp_path: Path) -> Iterator[Callable[..., Indexer]]:
    """`make_indexer(name="index.db", **options)`: an Indexer of the session's stack into a store under
    tmp_path (the same name opens the same database again)."""
    stores: list[ExplorerStore] = []

    def _make(name: str = "index.db", **options: Any) -> Indexer:
        store = ExplorerStore(tmp_path / name)
        stores.append(store)
        return Indexer(Rpc(rpc_url), deployment, store, **options)

    yield _make
    for store in stores:
        store.close()


@pytest.fixture(scope="module")
def played(
    deployer: Any,
    dapp: Any,
    challenger: Any,
    treasury: Any,
    model_owner: Any,
    operators: list[Any],
    fund: Any,
    make_model: Any,
    join: Any,
    make_request: Any,
    hub: Any,
    consensus: Any,
    attested: Any,
    optimistic: Any,
    staking: Any,
    registry: Any,
    by_address: dict[str, Any],
    act: Any,
) -> Played:
    """The scenario, played once in each module that uses it. Every fixture it uses is a parameter: ape
    re-runs a module fixture (rebases) when a test brings in a session fixture its snapshot did not have."""
    return play({name: value for name, value in locals().items()})


def dump(store: ExplorerStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every indexed row, table by table, sorted: two stores of the same chain dump equal."""
    return {
        table: sorted((tuple(r) for r in store.rows(f"SELECT * FROM {table}")), key=repr)
        for table in DATA_TABLES
    }
