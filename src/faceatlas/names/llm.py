"""Stage 1, who: ask an LLM for famous people, then ask it again to verify each name.

Two passes because one pass invents people: pass 1 (``famous_people``) lists candidates per
occupation and country, pass 2 (``verified_people``) judges each name on its own and keeps
only real public figures. Both use Chat Completions with a strict JSON schema through the
official ``openai`` SDK; every answer is validated again here, because a schema is a request,
not a guarantee (old models, proxies and compatible servers ignore it).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import openai
from pydantic import BaseModel, ConfigDict, ValidationError

from faceatlas.domain.errors import AuthError, BadResponseError, ConfigError, ProviderError
from faceatlas.domain.errors import RateLimitError as FaceAtlasRateLimitError
from faceatlas.domain.names import clean_label, name_key
from faceatlas.settings import Settings

log = logging.getLogger(__name__)

API_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
VERIFY_BATCH = 50  # names per verification request: short answers, less to redo on a retry
REQUEST_TIMEOUT = 120.0


class Candidate(BaseModel):
    """A name proposed by pass 1."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    name: str
    occupation: str


class Verdict(BaseModel):
    """Pass 2's judgement of one name."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    name: str
    verified: bool
    reason: str = ""


class _CandidateAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    people: list[Candidate]


class _VerdictAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    people: list[Verdict]


_Answer = TypeVar("_Answer", _CandidateAnswer, _VerdictAnswer)


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    # strict mode wants every property required and no extras
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


CANDIDATE_SCHEMA = _object(
    {
        "people": {
            "type": "array",
            "items": _object({"name": {"type": "string"}, "occupation": {"type": "string"}}),
        }
    }
)
VERDICT_SCHEMA = _object(
    {
        "people": {
            "type": "array",
            "items": _object(
                {
                    "name": {"type": "string"},
                    "verified": {"type": "boolean"},
                    "reason": {"type": "string"},
                }
            ),
        }
    }
)

GENERATE_SYSTEM = (
    "You are a careful researcher of public figures. You answer only with JSON matching the "
    "given schema. You list real, well-documented people only; you never invent names."
)
VERIFY_SYSTEM = (
    "You are a strict fact checker of public figures. You answer only with JSON matching the "
    "given schema, with exactly one entry per candidate, in the order given."
)

_KEY_LIKE = re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_\-*.]{6,}")


def _scrub(text: str, secret: str | None) -> str:
    """Error text from the provider without the API key (some servers echo a masked form)."""
    if secret:
        text = text.replace(secret, "***")
    return _KEY_LIKE.sub("***", text)


def _dedupe(items: Iterable[Any]) -> list[Any]:
    """Drop blank names and keep the first of each ``name_key``; names stripped and collapsed."""
    seen: set[str] = set()
    out = []
    for item in items:
        name = " ".join(item.name.split())
        key = name_key(name)
        if not key:
            continue
        if key in seen:
            continue
        seen.add(key)
        out.append(item.model_copy(update={"name": name}) if name != item.name else item)
    return out


class NameGenerator:
    """Pass 1 and pass 2 against any OpenAI-compatible Chat Completions endpoint."""

    def __init__(
        self,
        client: openai.OpenAI | None = None,
        *,
        model: str = "gpt-4.1",
        min_names: int = 20,
        max_retries: int = 2,
    ) -> None:
        if client is None:
            client = _client_from_env()
        if max_retries < 0:
            raise ConfigError("max_retries must be 0 or more")
        if min_names < 1:
            raise ConfigError("min_names must be at least 1")
        self.client = client
        self.model = model
        self.min_names = min_names
        self.max_retries = max_retries

    @classmethod
    def from_settings(cls, settings: Settings) -> NameGenerator:
        """A generator with the configured model; the key and URL come from the environment.

        Raises ConfigError naming ``OPENAI_API_KEY`` when it is not set, before any request.
        """
        return cls(_client_from_env(), model=settings.llm_model, min_names=settings.llm_min_names)

    # -- pass 1
    def generate(self, country: str, occupation: str) -> list[Candidate]:
        """The most famous people of ``occupation`` from ``country``: de-duplicated, non-blank."""
        country = clean_label(country, "country")
        occupation = clean_label(occupation, "occupation")
        prompt = (
            f"List at least {self.min_names} of the most famous people who are or were working "
            "as the occupation below and who come from the country below, most famous first.\n"
            "Give each person's full name (first and last name) in its original spelling, "
            "with all diacritics and in the original alphabet as used in that country.\n"
            "Only real, well-known people; no fictional characters, no groups or bands; "
            "each person once.\n"
            f"Country: {country}\n"
            f"Occupation: {occupation}"
        )
        answer = self._ask(
            "famous_people", CANDIDATE_SCHEMA, GENERATE_SYSTEM, prompt, _CandidateAnswer,
            f"Country: {country}, Occupation: {occupation}",
        )  # fmt: skip
        people = [
            c if c.occupation.strip() else c.model_copy(update={"occupation": occupation})
            for c in answer.people
        ]
        found = _dedupe(people)
        if len(found) < self.min_names:
            log.info("LLM listed %d %s from %s (asked for %d)", len(found), occupation,
                     country, self.min_names)  # fmt: skip
        return found

    # -- pass 2
    def review(self, country: str, names: Sequence[str]) -> list[Verdict]:
        """A verdict for every distinct name, in order.

        Names the verifier skipped count as unverified; names it added are ignored (a
        verifier must not be a second generator).
        """
        country = clean_label(country, "country")
        wanted: dict[str, str] = {}
        for name in names:
            name = " ".join(str(name).split())
            if name_key(name) and name_key(name) not in wanted:
                wanted[name_key(name)] = name
        verdicts: dict[str, Verdict] = {}
        batch_names = list(wanted.values())
        for start in range(0, len(batch_names), VERIFY_BATCH):
            batch = batch_names[start : start + VERIFY_BATCH]
            prompt = (
                "For each candidate below, decide whether this exact person is a real, "
                "well-known public figure from the country below. Set verified to false for "
                "invented, obscure or misattributed people, and give a short reason.\n"
                f"Country: {country}\n"
                f"Candidates: {json.dumps(batch, ensure_ascii=False)}"
            )
            answer = self._ask(
                "verified_people", VERDICT_SCHEMA, VERIFY_SYSTEM, prompt, _VerdictAnswer,
                f"Country: {country}, {len(batch)} candidates",
            )  # fmt: skip
            for verdict in _dedupe(answer.people):
                key = name_key(verdict.name)
                if key in wanted and key not in verdicts:
                    verdicts[key] = verdict.model_copy(update={"name": wanted[key]})
        return [
            verdicts.get(key) or Verdict(name=name, verified=False, reason="not confirmed")
            for key, name in wanted.items()
        ]

    def verify(self, country: str, names: Sequence[str]) -> list[Verdict]:
        """Only the verified verdicts of :meth:`review`."""
        return [v for v in self.review(country, names) if v.verified]

    def generate_and_verify(
        self, country: str, occupations: Sequence[str]
    ) -> list[tuple[Candidate, Verdict]]:
        """Both passes per occupation; the verified (candidate, verdict) pairs."""
        pairs: list[tuple[Candidate, Verdict]] = []
        for occupation in occupations:
            candidates = self.generate(country, occupation)
            verified = {
                name_key(v.name): v for v in self.verify(country, [c.name for c in candidates])
            }
            pairs += [(c, verified[name_key(c.name)]) for c in candidates
                      if name_key(c.name) in verified]  # fmt: skip
        return pairs

    # -- one request, validated, with retries on malformed answers
    def _ask(
        self,
        schema_name: str,
        schema: dict[str, Any],
        system: str,
        prompt: str,
        answer_type: type[_Answer],
        what: str,
    ) -> _Answer:
        problem = ""
        for attempt in range(self.max_retries + 1):
            content = self._complete(schema_name, schema, system, prompt)
            try:
                return answer_type.model_validate_json(content or "")
            except ValidationError as exc:
                problem = _describe(exc, content)
            log.warning("LLM %s answer unusable (attempt %d of %d): %s", schema_name,
                        attempt + 1, self.max_retries + 1, problem)  # fmt: skip
        raise BadResponseError(
            f"the LLM's {schema_name} answer ({what}) was not the expected JSON after "
            f"{self.max_retries + 1} attempts: {problem}"
        )

    def _complete(
        self, schema_name: str, schema: dict[str, Any], system: str, prompt: str
    ) -> str | None:
        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": prompt},
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": schema_name, "strict": True, "schema": schema},
                },
            )
        except openai.AuthenticationError as exc:
            raise AuthError(self._error_text("the LLM provider refused the API key", exc)) from None
        except openai.PermissionDeniedError as exc:
            raise AuthError(self._error_text("the API key may not use this model", exc)) from None
        except openai.RateLimitError as exc:
            raise FaceAtlasRateLimitError(
                self._error_text("the LLM provider kept rate-limiting", exc)
            ) from None
        except openai.APIConnectionError as exc:
            raise ProviderError(self._error_text("cannot reach the LLM provider", exc)) from None
        except openai.OpenAIError as exc:
            raise ProviderError(self._error_text("the LLM request failed", exc)) from None
        choices = getattr(response, "choices", None) or []
        if not choices:
            return None
        message = choices[0].message
        if getattr(message, "refusal", None):
            return None  # a refusal is not an answer; retried like one
        return message.content

    def _error_text(self, summary: str, exc: openai.OpenAIError) -> str:
        status = getattr(exc, "status_code", None)
        detail = _scrub(str(getattr(exc, "message", "") or exc), self._api_key())
        where = f"HTTP {status}: " if status else ""
        return f"{summary} ({where}{detail}; model {self.model})"

    def _api_key(self) -> str | None:
        key = getattr(self.client, "api_key", None)
        return key if isinstance(key, str) and key else None


def _describe(exc: ValidationError, content: str | None) -> str:
    if not content:
        return "empty answer"
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        return f"not JSON: {content[:80]!r}"
    where = ".".join(str(p) for p in first.get("loc", ())) or "answer"
    return f"wrong shape at {where}: {first.get('msg', 'invalid')}"


def _client_from_env() -> openai.OpenAI:
    """The SDK's client as it reads the environment; refuse early when no key is set."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise ConfigError(
            f"{API_KEY_ENV} is not set: export your OpenAI API key (and {BASE_URL_ENV} for "
            "an OpenAI-compatible server) before generating names"
        )
    return openai.OpenAI(api_key=key, timeout=REQUEST_TIMEOUT)
