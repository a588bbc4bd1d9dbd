"""The served app's settings (`.streamlit/config.toml`), read as Streamlit reads them."""
import tomllib
from pathlib import Path

CONFIG = Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml"


def test_public_deploy_settings():
    cfg = tomllib.loads(CONFIG.read_text())
    assert cfg["client"]["showErrorDetails"] == "type"  # no traceback, paths or code reach a viewer
    assert cfg["server"]["runOnSave"] is False
    # watching the project folder delayed every new session's first run by seconds
    assert cfg["server"]["fileWatcherType"] == "none"
