"""The seed's service routes: AI agents, quantum, blockchain (the ledger). Bodies in gateway/api/services.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.api import services
from gateway.api.context import Context, ctx_of
from gateway.api.security import Principal, developer, viewer

router = APIRouter(tags=["services"])
Ctx = Annotated[Context, Depends(ctx_of)]
Viewer = Annotated[Principal, Depends(viewer)]
Developer = Annotated[Principal, Depends(developer)]


class ServiceBody(BaseModel):
    model_config = {"extra": "allow"}


class ContractDeploy(BaseModel):
    contract: str = Field(min_length=1, max_length=100, description="Agreement or AuditAnchor")
    args: list[Any] = Field(default_factory=list, max_length=64)
    agent: str = Field(default="platform", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    wait_s: float = Field(default=60.0, ge=0, le=300, description="0: do not wait for the receipt")


class ContractCall(BaseModel):
    function: str = Field(min_length=1, max_length=100)
    args: list[Any] = Field(default_factory=list, max_length=64)
    agent: str = Field(default="platform", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    wait_s: float = Field(default=60.0, ge=0, le=300)


@router.get("/services", summary="Which services are installed (viewer)")
def status(_p: Viewer) -> dict[str, str]:
    return services.status()


@router.get("/ai/agents", summary="AI agents (viewer; 501 until the agents service is installed)")
def agents(ctx: Ctx, _p: Viewer) -> Any:
    return services.agents_list(ctx.backend.platform)


@router.post("/ai/collaborate", summary="Agents collaborating on a protocol (developer; 501 until installed)")
def collaborate(body: ServiceBody, ctx: Ctx, _p: Developer) -> Any:
    return services.agents_collaborate(ctx.backend.platform, body.model_dump())


@router.post("/quantum/entanglement", summary="Entangle (developer; 501 until the quantum service is installed)")
def entanglement(body: ServiceBody, ctx: Ctx, _p: Developer) -> Any:
    return services.quantum_entanglement(ctx.backend.platform, body.model_dump())


@router.post("/quantum/teleportation", summary="Teleport (developer; 501 until the quantum service is installed)")
def teleportation(body: ServiceBody, ctx: Ctx, _p: Developer) -> Any:
    return services.quantum_teleportation(ctx.backend.platform, body.model_dump())


@router.get("/blockchain/contracts", summary="Contracts the ledger can deploy (viewer)")
def contracts(_p: Viewer) -> list[str]:
    return services.ledger_contracts()


@router.post("/blockchain/contracts", summary="Deploy a contract through the ledger (developer)")
def deploy_contract(body: ContractDeploy, ctx: Ctx, _p: Developer) -> JSONResponse:
    code, doc = services.ledger_deploy(ctx.backend.platform, body.contract, body.args, body.agent, body.wait_s)
    return JSONResponse(doc, status_code=code)


@router.post("/blockchain/contracts/{contract_id}/execute",
             summary="Call a function of a deployed contract NAME@ADDRESS (developer)")  # fmt: skip
def execute(contract_id: str, body: ContractCall, ctx: Ctx, _p: Developer) -> JSONResponse:
    code, doc = services.ledger_execute(ctx.backend.platform, contract_id, body.function, body.args, body.agent,
                                        body.wait_s)  # fmt: skip
    return JSONResponse(doc, status_code=code)
