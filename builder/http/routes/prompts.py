"""Prompt helpers: improve a site request, name a project."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from builder.http.deps import ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.ratelimit import rate_limited
from builder.http.schemas import GeneratedTitle, ImprovedPrompt, PromptBody
from builder.models.prompts import generate_title, improve_prompt

router = APIRouter(
    prefix="/api",
    tags=["prompts"],
    dependencies=[Depends(rate_limited("prompt"))],
    responses=ERROR_RESPONSES,
)


@router.post("/improve-prompt", response_model=ImprovedPrompt)
async def improve(body: PromptBody, services: ServicesDep) -> ImprovedPrompt:
    """A clearer, more specific version of a site request."""
    text = await improve_prompt(
        body.prompt, model=services.helper_model, settings=services.settings
    )
    return ImprovedPrompt(prompt=text)


@router.post("/generate-title", response_model=GeneratedTitle)
async def title(body: PromptBody, services: ServicesDep) -> GeneratedTitle:
    """A short title for the project a request describes."""
    text = await generate_title(
        body.prompt, model=services.helper_model, settings=services.settings
    )
    return GeneratedTitle(title=text)
