"""The terminal UI: a dashboard of budget bars, a menu of actions, and the guided tour."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from aegis.core import format_usd
from demo import actions
from demo.actions import CallResult
from demo.stack import TENANTS, Stack

__all__ = ["Demo"]

PROMPTS = (
    "Summarize this meeting for the team: billing dashboard, migration, alerts.",
    "Draft a reply to a customer whose order arrived late, with a refund.",
    "Write a haiku about budgets.",
)


@dataclass(frozen=True, slots=True)
class MenuItem:
    key: str
    label: str
    run: Callable[[], object]


class Demo:
    """The demo's screen and actions over a running :class:`Stack`."""

    def __init__(self, stack: Stack, console: Console) -> None:
        self.stack = stack
        self.console = console
        self.tenant = TENANTS[0].tenant_id
        self.models = {t.tenant_id: t.model for t in TENANTS}

    # --- screen ---------------------------------------------------------------------------

    def header(self) -> Panel:
        """Who is serving what."""
        sim = self.stack.simulated
        lines = Text()
        lines.append("proxy     ", style="bold")
        lines.append(
            f"{self.stack.url}  (the real aegis-proxy: Gate, SQLite ledger, signed receipts)\n"
        )
        for kind in ("openai", "gemini", "anthropic"):
            label = self.stack.provider_label(kind)
            lines.append(f"{kind:<10}", style="bold")
            if label == "real":
                lines.append(f"real {kind} API (your {kind.upper()}_API_KEY)\n", style="yellow")
            else:
                lines.append("SIMULATED upstream", style="bold magenta")
                lines.append(" (local, no network, canned replies)")
                if kind == "openai" and sim.openai_failing:
                    lines.append("  DOWN: answering 503", style="bold red")
                lines.append("\n")
        lines.append("workdir   ", style="bold")
        lines.append(self.stack.shown(self.stack.workdir))
        return Panel(lines, title="Aegis demo", title_align="left", border_style="cyan")

    def budgets(self) -> Table:
        """One row per budget: a bar of spend (committed and held) against its limit."""
        table = Table(title="Budgets (live from the proxy's ledger)", title_justify="left")
        table.add_column("tenant / model", no_wrap=True)
        table.add_column("budget", no_wrap=True)
        table.add_column("spend", width=18)
        table.add_column("spent", justify="right", no_wrap=True)
        table.add_column("limit", justify="right", no_wrap=True)
        table.add_column("resets UTC", no_wrap=True)
        previous = None
        for bar in actions.budget_bars(self.stack):
            first = bar.tenant != previous
            previous = bar.tenant
            share = min(1.0, bar.spent_nanos / bar.limit_nanos) if bar.limit_nanos else 1.0
            style = "green" if share < 0.6 else "yellow" if share < 0.9 else "red"
            who = Text()
            if first:
                current = bar.tenant == self.tenant
                who.append(
                    ("▶ " if current else "  ") + bar.tenant, style="bold" if current else ""
                )
                who.append(f"\n  {self.models[bar.tenant]}", style="dim")
            table.add_row(
                who,
                bar.budget + ("" if bar.hard_stop else " (soft)"),
                ProgressBar(total=bar.limit_nanos, completed=bar.spent_nanos, complete_style=style),
                f"${format_usd(bar.spent_nanos)}",
                f"${format_usd(bar.limit_nanos)}",
                bar.resets_at.strftime("%H:%M:%S") if bar.resets_at else "never",
                end_section=False,
            )
        return table

    def dashboard(self) -> None:
        """Print the header and the budget bars."""
        self.console.print(self.header())
        self.console.print(self.budgets())

    # --- actions --------------------------------------------------------------------------

    def show_result(self, result: CallResult) -> None:
        """One call's outcome: cost, receipt and route, or the governance answer."""
        c = self.console
        if result.status == 200:
            tokens = f"{result.input_tokens} in / {result.output_tokens} out tokens"
            c.print(
                f"[green]200 OK[/]  {tokens}  cost [bold]${result.cost_usd}[/]  "
                f"receipt {result.receipt_id}"
            )
            if result.failed_attempts:
                c.print(
                    f"[bold yellow]FALLBACK[/] {', '.join(result.failed_attempts)} failed -> "
                    f"served by [bold]{result.served_by}[/]"
                )
            else:
                c.print(f"served by {result.served_by}")
        elif result.status == 429 and result.budget:
            c.print(
                f"[bold red]HARD STOP 429[/] budget [bold]{result.budget}[/] of tenant "
                f"{result.tenant} is spent ({result.error_type})"
            )
            c.print(f"  reason: {result.error_message}")
            c.print(f"  resets at: [bold]{result.resets_at or 'never (per-run budget)'}[/]")
        elif result.status == 403:
            c.print(
                f"[bold red]DENIED 403[/] by policy ({result.error_code}): {result.error_message}"
            )
        else:
            c.print(
                f"[bold red]{result.status}[/] {result.error_type} {result.error_code or ''}: "
                f"{result.error_message}"
            )

    def prompt(self, text: str, *, model: str | None = None) -> CallResult:
        """Stream one prompt from the current tenant and show what happened."""
        model = model or self.models[self.tenant]
        c = self.console
        c.print(f"[bold]{self.tenant}[/] -> [bold]{model}[/]: {text}")
        column = 0

        def show(pieces: str) -> None:
            # Wrap at words ourselves: the text arrives in pieces, and a log has no terminal
            # to wrap it.
            nonlocal column
            for piece in re.split(r"(?=\s)", pieces):
                at_word = piece[:1].isspace() and column > c.width - 12
                if at_word or column + len(piece) > c.width:
                    c.print()
                    piece = piece.lstrip()
                    column = 0
                c.print(piece, end="", style="cyan", markup=False, highlight=False, soft_wrap=True)
                column += len(piece)

        result = actions.send(self.stack, self.tenant, model, text, on_text=show)
        if result.text:
            c.print()
        self.show_result(result)
        return result

    def spend_until_stopped(self, max_calls: int = 60) -> CallResult | None:
        """Send prompts (not streamed) until a budget stops the tenant; the bars drain live."""
        c = self.console
        model = self.models[self.tenant]
        c.print(f"[bold]{self.tenant}[/] sends prompts with {model} until a budget says no:")
        last = None
        # The bars redraw in place on a terminal; in a log they would only repeat.
        live = Live(self.budgets(), console=c, auto_refresh=False) if c.is_terminal else None
        if live is not None:
            live.start()
        try:
            for n in range(1, max_calls + 1):
                last = actions.send(self.stack, self.tenant, model, PROMPTS[0], stream=False)
                if last.status == 200:
                    c.print(f"  call {n:>2}: 200  ${last.cost_usd}")
                if live is not None:
                    live.update(self.budgets(), refresh=True)
                if last.status != 200:
                    break
        finally:
            if live is not None:
                live.stop()
        if last is not None and last.status == 200:
            c.print(f"No budget stopped {self.tenant} after {max_calls} calls.")
        elif last is not None:
            self.show_result(last)
        return last

    def list_receipts(self, limit: int = 12) -> None:
        """The latest receipts of the trail (read, not verified)."""
        trail = actions.read_trail(self.stack)
        files = sorted({r.file.name for r in trail[-limit:]})
        table = Table(
            title=f"Receipts: last {min(limit, len(trail))} of {len(trail)} "
            f"(read from {', '.join(files) or 'receipts/'}, not verified)",
            title_justify="left",
        )
        for column in ("line", "seq", "tenant", "provider/model", "outcome", "usd"):
            table.add_column(
                column,
                justify="right" if column in ("line", "seq", "usd") else "left",
                no_wrap=column != "outcome",
            )
        for r in trail[-limit:]:
            d = r.record.get("decision") or {}
            outcome = str(r.record.get("status"))
            if not d.get("allowed"):
                outcome = f"denied: {d.get('reason')}"
                if d.get("budget"):
                    outcome += f" ({d['budget']})"
            table.add_row(
                str(r.line),
                str(r.record.get("seq")),
                str(r.record.get("tenant_id")),
                f"{r.record.get('provider')}/{r.record.get('model')}",
                outcome,
                str(r.record.get("actual_usd")),
            )
        self.console.print(table)

    def verify(self) -> int:
        """Run ``aegis-receipts verify`` and show its verdict."""
        result = actions.verify(self.stack)
        ok = result.exit_code == 0
        body = Text(f"$ {result.command}\n", style="bold")
        body.append(result.output)
        self.console.print(
            Panel(
                body,
                title="trail INTACT" if ok else "verification FAILED",
                title_align="left",
                border_style="green" if ok else "red",
            )
        )
        if not ok:
            for line in result.output.splitlines():
                if ".jsonl:" in line and "[" in line:
                    where = line.split(": [", 1)[0]
                    self.console.print(f"[bold red]-> the problem is at {where}[/]")
                    break
        return result.exit_code

    def tamper(self) -> None:
        """Edit one receipt on disk, the way a dishonest operator would."""
        done = actions.tamper(self.stack)
        if done is None:
            self.console.print("No paid receipt to tamper with yet: send a prompt first.")
            return
        self.console.print(
            f"[bold red]TAMPERED[/] {done.file.name} line {done.line} (receipt seq {done.seq}): "
            f'{done.field} "{done.old}" -> "{done.new}" (a smaller bill, same length)'
        )

    def toggle_primary(self) -> None:
        """Make the simulated OpenAI upstream fail (503) or recover."""
        if self.stack.real["openai"]:
            self.console.print(
                "The OpenAI provider is the real API: only a simulated one can fail."
            )
            return
        sim = self.stack.simulated
        sim.openai_failing = not sim.openai_failing
        state = "DOWN (503 on every call)" if sim.openai_failing else "healthy again"
        self.console.print(f"Simulated OpenAI upstream is now [bold]{state}[/].")

    # --- the tour -------------------------------------------------------------------------

    def step(self, number: int, total: int, title: str) -> None:
        """A tour heading."""
        self.console.rule(f"[bold]Step {number}/{total}: {title}")

    def tour(self) -> int:
        """Every feature in order; returns the final verify's exit code (1: tamper caught)."""
        total = 9
        self.dashboard()
        self.step(1, total, "acme streams a prompt through the proxy")
        self.tenant = "acme"
        self.prompt(PROMPTS[0])
        self.step(2, total, "research asks for a model its policy does not allow")
        self.tenant = "research"
        self.prompt(PROMPTS[2], model="gpt-4o")
        self.prompt(PROMPTS[2])
        self.step(3, total, "support talks to Gemini through the OpenAI SDK")
        self.tenant = "support"
        self.prompt(PROMPTS[1])
        self.step(4, total, "the OpenAI upstream fails; acme falls back to Gemini")
        self.tenant = "acme"
        self.toggle_primary()
        self.prompt(PROMPTS[1])
        if self.stack.simulated.openai_failing:
            self.toggle_primary()
        self.step(5, total, "acme spends until its hour budget stops it")
        self.spend_until_stopped()
        self.step(6, total, "the budgets now")
        self.console.print(self.budgets())
        self.step(7, total, "the receipts")
        self.list_receipts()
        self.step(8, total, "verify the trail")
        self.verify()
        self.step(9, total, "tamper with one receipt, then verify again")
        self.tamper()
        code = self.verify()
        self.console.rule("[bold]End of the tour")
        return code

    # --- the menu -------------------------------------------------------------------------

    def pick_tenant(self) -> None:
        """Choose who sends the next prompts."""
        for i, t in enumerate(TENANTS, start=1):
            self.console.print(f"  {i}  {t.tenant_id:<9} {t.blurb}")
        answer = self.ask("tenant (number or name)").strip()
        names = [t.tenant_id for t in TENANTS]
        if answer.isdigit() and 1 <= int(answer) <= len(TENANTS):
            self.tenant = names[int(answer) - 1]
        elif answer.lower() in names:
            self.tenant = answer.lower()
        elif answer:
            # Said, not silently ignored: the tenant stays what it was.
            self.console.print(f"No tenant {answer!r}: pick one of {', '.join(names)}.")
        self.console.print(f"Tenant is now [bold]{self.tenant}[/].")

    def pick_model(self) -> None:
        """Choose the model of the current tenant's prompts (any name: policy decides)."""
        self.console.print("Models: gpt-4o, gpt-4o-mini, gpt-4.1-mini, gemini-2.5-flash, ...")
        answer = self.ask(f"model for {self.tenant}").strip()
        if answer:
            self.models[self.tenant] = answer
        self.console.print(f"{self.tenant} now asks for [bold]{self.models[self.tenant]}[/].")

    def send_prompt(self) -> None:
        """Ask for a prompt (empty: a sample one) and stream it."""
        text = self.ask("prompt (Enter for a sample)").strip()
        self.prompt(text or PROMPTS[0])

    def ask(self, question: str) -> str:
        """Read one line from the user."""
        return self.console.input(f"[bold cyan]{question}[/] > ")

    def menu(self) -> None:
        """The interactive loop: dashboard, menu, one action, until quit."""
        items = [
            MenuItem("1", "pick a tenant", self.pick_tenant),
            MenuItem("2", "send a prompt (streamed)", self.send_prompt),
            MenuItem("3", "pick the tenant's model", self.pick_model),
            MenuItem("4", "spend until a budget stops the tenant", self.spend_until_stopped),
            MenuItem("5", "make the simulated OpenAI fail / recover", self.toggle_primary),
            MenuItem("6", "list receipts", self.list_receipts),
            MenuItem("7", "verify the receipt trail", self.verify),
            MenuItem("8", "tamper with a receipt", self.tamper),
            MenuItem("t", "take the guided tour", self.tour),
        ]
        by_key = {item.key: item for item in items}
        while True:
            self.dashboard()
            self.console.print(
                "  ".join(f"[bold]{i.key}[/] {i.label}" for i in items) + "  [bold]q[/] quit"
            )
            choice = self.ask(f"[{self.tenant}] choose").strip().lower()
            if choice in ("q", "quit", "exit"):
                return
            item = by_key.get(choice)
            if item is None:
                self.console.print(f"No such choice: {choice!r}")
                continue
            item.run()
