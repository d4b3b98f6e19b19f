"""LangChain's standard unit tests for chat models, run against ScriptedChatModel."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.unit_tests import ChatModelUnitTests

from builder.models import ScriptedChatModel


@pytest.fixture
def snapshot() -> None:
    """Stands in for syrupy's fixture, which ``test_serdes`` requests.

    The scripted model is not LangChain-serialisable (it holds a whole script), so the
    standard ``test_serdes`` skips before it would use a snapshot.
    """


class TestScriptedChatModelStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ScriptedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # Text only: with_structured_output binds just the schema, so a script
        # calling other tools would (rightly) be refused by bind_tools.
        return {
            "model": "scripted-standard",
            "script": {"turns": [{"responses": [{"content": "Hello from the script."}]}]},
        }
