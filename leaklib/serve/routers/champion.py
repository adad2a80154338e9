"""``/champion``: the current champion of a model name."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from leaklib import champion
from leaklib.serve.deps import MetadataDep, ServerDep
from leaklib.serve.schemas import RUN_ID_PATTERN, Champion, Message

router = APIRouter()


@router.get(
    "/champion",
    summary="Read the champion",
    description="The current champion of the dataset's model name (or `model_name`): its "
    "run, model hash, alarm threshold, metrics and why it was promoted.",
    response_model=Champion,
    responses={404: {"model": Message, "description": "No champion yet."}},
)
def read_champion(
    server: ServerDep,
    metadata: MetadataDep,
    model_name: Annotated[
        str | None,
        Query(
            pattern=RUN_ID_PATTERN,
            examples=["leak-detector"],
            description="Default: the server's dataset.model_name.",
        ),
    ] = None,
) -> Champion:
    name = model_name or server.params.dataset.model_name
    pointer = champion.current_champion(metadata, model_name=name)
    if pointer is None:
        raise HTTPException(status_code=404, detail=f"no champion yet for model {name!r}")
    shown = {k: pointer.get(k) for k in Champion.model_fields if k != "model_name"}
    return Champion(model_name=name, **{**shown, "metrics": pointer.get("metrics") or {}})
