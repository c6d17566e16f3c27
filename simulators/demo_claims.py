"""The claim in `vigil demo`: the leak's member confirms their pre-filled claim in one tap, and a stand-in
insurer receives it, accepts it with a claim number and pays it, each answer signed back to Vigil.
"""

from __future__ import annotations

import re
import secrets
import threading
import time

import httpx
from rich.console import Console
from rich.table import Table

from simulators.inbox import Arrival
from simulators.insurer import FiledClaim, Insurer

CONFIRM_LINK = re.compile(r"https?://\S+/c/[A-Za-z0-9_-]+")
# Pauses that let each step show in the demo's output; a real insurer takes days.
ANSWER_AFTER_S = 3.0


class ClaimConfirmer:
    """The member whose home leaked: taps "Send my claim" in the message asking them to confirm it."""

    TAP_AFTER_S = 3.0

    def __init__(self, console: Console, member_path: str) -> None:
        self._console = console
        self._member_path = member_path
        self._tapped = threading.Event()
        self.confirmed = False

    def on_arrival(self, arrival: Arrival) -> None:
        found = CONFIRM_LINK.search(arrival.body)
        if arrival.path != self._member_path or found is None or self._tapped.is_set():
            return
        self._tapped.set()
        threading.Timer(self.TAP_AFTER_S, self._tap, args=(found.group(0),)).start()

    def _tap(self, link: str) -> None:
        try:
            status = httpx.post(link, timeout=10).status_code
        except httpx.HTTPError as e:
            self._console.print(f"[red]the member could not confirm their claim: {e}[/red]")
            return
        self.confirmed = status == 200
        self._console.print(f"[bold green]the member tapped \"Send my claim\"[/bold green]: HTTP {status}")


class AnsweringInsurer:
    """An `Insurer` that accepts each claim it receives, with a claim number, and then pays it."""

    def __init__(self, console: Console, api_url: str) -> None:
        self.secret = secrets.token_urlsafe(24)
        self._console = console
        self._api_url = api_url
        self.paid: set[str] = set()
        self.insurer = Insurer(self.secret, on_filed=self._filed)

    def start(self) -> AnsweringInsurer:
        self.insurer.start()
        return self

    def stop(self) -> None:
        self.insurer.stop()

    def _filed(self, filed: FiledClaim) -> None:
        self._console.print(f"[bold]insurer[/bold] received claim {filed.key} ({filed.claim.get('type')}, policy "
                            f"{filed.claim.get('policy_number')}), signature checked")
        threading.Thread(target=self._answer, args=(filed.key,), name="insurer-answers", daemon=True).start()

    def _answer(self, claim_id: str) -> None:
        number = f"INS-{secrets.randbelow(900_000) + 100_000}"
        for status in ("accepted", "paid"):
            time.sleep(ANSWER_AFTER_S)
            try:
                answer = self.insurer.answer(self._api_url, claim_id, status, number=number)
            except httpx.HTTPError as e:
                self._console.print(f"[red]the insurer could not answer {status}: {e}[/red]")
                return
            self._console.print(f"[bold]insurer[/bold] answered {status} ({number}): HTTP {answer.status_code}")
        self.paid.add(claim_id)

    def wait_paid(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.paid and time.monotonic() < deadline:
            time.sleep(0.5)
        return bool(self.paid)


def claims_table(http: httpx.Client, member_ids: list[str]) -> Table:
    """Every claim of the demo's members: what it is, how it went, and its evidence digest."""
    table = Table("claim", "type", "status history", "insurer's number", "evidence digest", title="Claims")
    for member_id in member_ids:
        for claim in http.get("/api/v1/claims", params={"member_id": member_id}).json():
            history = " → ".join(entry["status"] for entry in claim["status_history"])
            table.add_row(claim["id"][:8], claim["type"], history, claim.get("insurer_claim_number") or "",
                          claim["evidence_digest"][:19] + "…")
    return table
