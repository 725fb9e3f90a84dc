"""Shared page routes (login, lock, language). Filled in by the web interface work."""

from fastapi import APIRouter

router = APIRouter()
