"""Money: prices, budgets and the ledger.

Amounts are integers in micro-units of the currency (1 = 0.000001), so arithmetic is exact.
A job **reserves** its maximum cost when it is accepted; when it ends it **settles** what it
made and **refunds** the rest, once. A reservation is a conditional update
(`spent + reserved + cost <= budget`), so concurrent requests can never overspend.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, Insert, Update, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from pixelgate.catalog import ImageOptions, ModelSpec
from pixelgate.catalog.spec import find_price, lookup_price
from pixelgate.clock import Clock, as_utc
from pixelgate.db import Database
from pixelgate.db.job_records import JobResult, JobRoute
from pixelgate.db.rows import conflict_insert, table
from pixelgate.db.tables import BudgetAccount, Job, LedgerEntry, Tenant, UsageDaily
from pixelgate.errors import BudgetExceeded, ValidationError
from pixelgate.service.job_store import JobStatus

MICRO = Decimal("0.000001")
TOTAL = "total"
CURRENCY = "USD"
"""The currency of every price and budget (the catalog's and the tenants' alike)."""

# Every job reserves and settles: these statements are built once (see `db.rows`).
ACCOUNTS = table(BudgetAccount)
LEDGER = table(LedgerEntry)
_ACCOUNT = (
    ACCOUNTS.c.tenant_id == bindparam("b_tenant"),
    ACCOUNTS.c.period == bindparam("b_period"),
)
ACCOUNT = select(ACCOUNTS.c.spent, ACCOUNTS.c.reserved).where(*_ACCOUNT)
RESERVE = (
    update(ACCOUNTS).where(*_ACCOUNT).values(reserved=ACCOUNTS.c.reserved + bindparam("b_amount"))
)
RESERVE_WITHIN = RESERVE.where(
    ACCOUNTS.c.spent + ACCOUNTS.c.reserved + bindparam("b_amount") <= bindparam("b_limit")
)
_BOTH = (
    ACCOUNTS.c.tenant_id == bindparam("b_tenant"),
    ACCOUNTS.c.period.in_([TOTAL, bindparam("b_month")]),
)
"""The tenant's total account and one month's."""
RESERVE_BOTH = (
    update(ACCOUNTS)
    .where(*_BOTH)
    .values(reserved=ACCOUNTS.c.reserved + bindparam("b_amount"))
    .returning(ACCOUNTS.c.period)
)
SETTLE = (
    update(ACCOUNTS)
    .where(*_BOTH)
    .values(
        reserved=ACCOUNTS.c.reserved - bindparam("b_held"),
        spent=ACCOUNTS.c.spent + bindparam("b_spent"),
    )
)
INSERT_ENTRY = insert(LEDGER)
JOBS = table(Job)
SET_JOB_COST = update(JOBS).where(JOBS.c.id == bindparam("b_job")).values(cost=bindparam("b_cost"))
USAGE = table(UsageDaily)
USAGE_SINCE = select(USAGE.c.day, USAGE.c.model, USAGE.c.spent, USAGE.c.images, USAGE.c.jobs).where(
    USAGE.c.tenant_id == bindparam("tenant_id"), USAGE.c.day >= bindparam("since")
)
"""A tenant's days since one: a range of the primary key (tenant, day, model)."""
ENTRIES_OF_JOB = select(
    LEDGER.c.kind,
    LEDGER.c.tenant_id,
    LEDGER.c.amount,
    LEDGER.c.images,
    LEDGER.c.model,
    LEDGER.c.period,
).where(LEDGER.c.job_id == bindparam("job_id"))


def to_micros(amount: Decimal | str, *, param: str = "amount") -> int:
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise ValidationError(f"Invalid {param}: {amount!r} is not a number", param=param) from None
    if not value.is_finite() or value < 0:
        raise ValidationError(f"Invalid {param}: must be zero or more", param=param)
    return int((value / MICRO).to_integral_value(ROUND_HALF_UP))


def format_money(micros: int) -> str:
    """`80000` → `"0.08"`; at least two decimals, no trailing zeros past them."""
    text = f"{Decimal(micros) * MICRO:.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


@dataclass(frozen=True)
class Cost:
    """What a job cost: a decimal string (`format_money`) and its currency."""

    amount: str
    currency: str = CURRENCY


def job_cost(job: Job) -> Cost | None:
    """The one rendering of a job's cost (job views, responses, events, webhooks): what its
    settlement charged once it ended (zero for a job that paid nothing: a free model, a
    failure, a free cache hit); None while it is queued or running."""
    if not JobStatus(job.status).is_terminal:
        return None
    return Cost(format_money(job.cost or 0))


def month_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


def day_of(moment: datetime) -> str:
    return as_utc(moment).date().isoformat()


def add_usage_statement(dialect: str) -> Insert:
    """Add one settlement to its tenant's day and model: an insert that adds to the row when
    it exists (`ON CONFLICT DO UPDATE`, on SQLite and PostgreSQL alike). One statement, so two
    settlements of the same day and model at once both count: the second waits for the first's
    row and adds to it."""
    statement = conflict_insert(USAGE, dialect)
    return statement.on_conflict_do_update(
        index_elements=[USAGE.c.tenant_id, USAGE.c.day, USAGE.c.model],
        set_={
            "spent": USAGE.c.spent + statement.excluded.spent,
            "images": USAGE.c.images + statement.excluded.images,
            "jobs": USAGE.c.jobs + statement.excluded.jobs,
        },
    )


@dataclass(frozen=True)
class BudgetStatus:
    period: str
    limit: int | None
    spent: int
    reserved: int

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.spent - self.reserved)


@dataclass
class UsageReport:
    tenant_id: str
    since: datetime
    spent: int = 0
    images: int = 0
    jobs: int = 0
    by_model: dict[str, dict[str, int]] = field(default_factory=dict)
    by_day: dict[str, dict[str, int]] = field(default_factory=dict)
    budgets: list[BudgetStatus] = field(default_factory=list)


class Billing:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._returning = bool(db.engine.dialect.update_returning)
        self._add_usage = add_usage_statement(db.engine.dialect.name)

    def image_price(self, tenant: Tenant, spec: ModelSpec, options: ImageOptions) -> int:
        """The price of one image of this request for this tenant, in micros."""
        width, height = getattr(options, "width", None), getattr(options, "height", None)
        size = getattr(options, "size", None) or (width and height and f"{width}x{height}") or None
        quality = getattr(options, "quality", None)
        # A tenant's prices for a model replace the catalog's: its most specific key, then its
        # own `default`, and only then the catalog (whose size prices must not outrank it).
        overrides = (tenant.prices or {}).get(spec.id, {})
        own = {key: Decimal(value) for key, value in overrides.items()}
        price = find_price(own, size=size, quality=quality)
        if price is None:
            price = lookup_price(spec.prices, size=size, quality=quality)
        return to_micros(price)

    # -- inside a job's own transaction ---------------------------------------------------

    def reserve(
        self,
        connection: Connection,
        *,
        tenant: Tenant,
        job_id: str,
        model: str,
        amount: int,
        images: int,
    ) -> None:
        """Hold `amount` against every budget of the tenant, or refuse the whole request."""
        month = month_of(self._clock.now())
        entry = self._row(tenant.id, job_id, "reserve", amount, images, model, month)
        if tenant.budget_total is None and tenant.budget_monthly is None and self._returning:
            # no limit to keep: both accounts in one statement; one not made yet is made here
            both = {"b_tenant": tenant.id, "b_month": month, "b_amount": amount}
            held = set(connection.scalars(RESERVE_BOTH, both))
            for period in {TOTAL, month} - held:
                _ensure_account(connection, tenant.id, period)
                one = {"b_tenant": tenant.id, "b_period": period, "b_amount": amount}
                if not _changed(connection, RESERVE, one):
                    raise RuntimeError(f"budget account {tenant.id}/{period} is missing")
            connection.execute(INSERT_ENTRY, entry)
            return
        for period, limit in ((TOTAL, tenant.budget_total), (month, tenant.budget_monthly)):
            statement = RESERVE if limit is None else RESERVE_WITHIN
            values = {
                "b_tenant": tenant.id,
                "b_period": period,
                "b_amount": amount,
                "b_limit": limit,
            }
            # the account usually exists: it is made (once per period) only when none matched
            if _changed(connection, statement, values) or (
                _ensure_account(connection, tenant.id, period)
                and _changed(connection, statement, values)
            ):
                continue
            account = connection.execute(ACCOUNT, {"b_tenant": tenant.id, "b_period": period}).one()
            assert limit is not None
            remaining = max(0, limit - account.spent - account.reserved)
            which = "total" if period == TOTAL else f"monthly ({period})"
            raise BudgetExceeded(
                f"Budget exceeded: this request costs {format_money(amount)} and "
                f"{format_money(remaining)} remains of the {which} budget"
            )
        connection.execute(INSERT_ENTRY, entry)

    def finish(
        self,
        connection: Connection,
        job_id: str,
        *,
        produced: int,
        served_by: tuple[str, int] | None = None,
    ) -> int:
        """Settle what a job made and refund the rest of its reservation, once per job. Returns
        the job's settled amount (this settlement's or an earlier one's), for its row
        (`jobs.cost`): the job store's ending update writes it there (`on_job_ending`); 0 for a
        job that reserved nothing.

        `served_by`: the model that made the images and its price per image, for a job that
        reserved for the dearest of several (a fallback route): it pays that model's price for
        what it made, never more than it reserved, and the settlement and usage name it."""
        entries = connection.execute(ENTRIES_OF_JOB, {"job_id": job_id}).all()
        reservation = next((entry for entry in entries if entry.kind == "reserve"), None)
        settled = next((entry for entry in entries if entry.kind == "settle"), None)
        if settled is not None:
            return int(settled.amount)
        if reservation is None or any(entry.kind == "refund" for entry in entries):
            return 0
        produced = min(produced, reservation.images)
        spent = int(reservation.amount * produced // max(reservation.images, 1))
        model = reservation.model
        if served_by is not None:
            model, price = served_by
            spent = min(price * produced, reservation.amount)
        connection.execute(  # the total account and the month's, alike
            SETTLE,
            {
                "b_tenant": reservation.tenant_id,
                "b_month": reservation.period,
                "b_held": reservation.amount,
                "b_spent": spent,
            },
        )
        args = (reservation.tenant_id, job_id)
        tail = (reservation.model, reservation.period)
        rows = [self._row(*args, "settle", spent, produced, model, reservation.period)]
        if spent < reservation.amount:
            refund = reservation.amount - spent
            rows.append(self._row(*args, "refund", refund, reservation.images - produced, *tail))
        connection.execute(INSERT_ENTRY, rows)
        connection.execute(
            self._add_usage,
            {
                "tenant_id": reservation.tenant_id,
                "day": day_of(self._clock.now()),
                "model": model,
                "spent": spent,
                "images": produced,
                "jobs": 1,
            },
        )
        return spent

    def charge(
        self,
        connection: Connection,
        *,
        tenant: Tenant,
        job_id: str,
        model: str,
        amount: int,
        images: int,
    ) -> int:
        """Reserve `amount` for `images` and settle them at once, for a job recorded as already
        ended (a cache hit served as it is accepted), whose row no ending update will write:
        the cost is written to it here. Returns the cost."""
        self.reserve(
            connection, tenant=tenant, job_id=job_id, model=model, amount=amount, images=images
        )
        spent = self.finish(connection, job_id, produced=images)
        if spent:
            connection.execute(SET_JOB_COST, {"b_job": job_id, "b_cost": spent})
        return spent

    def on_job_ending(
        self, connection: Connection, job_id: str, status: JobStatus, values: dict[str, Any]
    ) -> dict[str, Any]:
        """The job store's end hook: a success pays for what it made, anything else for
        nothing. Returns the job's cost, which the update that ends the job writes."""
        result, route = values.get("result"), values.get("route")
        produced = 0
        if status == JobStatus.SUCCEEDED and isinstance(result, JobResult):
            produced = len(result.images)
        served_by = None
        if status == JobStatus.SUCCEEDED and isinstance(route, JobRoute) and route.tries:
            served_by = (route.tries[-1].model, route.price)  # the try that served it
        return {"cost": self.finish(connection, job_id, produced=produced, served_by=served_by)}

    # -- reports --------------------------------------------------------------------------

    def budgets(self, tenant: Tenant) -> list[BudgetStatus]:
        month = month_of(self._clock.now())
        with self._db.session() as session:
            statuses = []
            for period, limit in ((TOTAL, tenant.budget_total), (month, tenant.budget_monthly)):
                account = session.get(BudgetAccount, (tenant.id, period))
                spent, reserved = (account.spent, account.reserved) if account else (0, 0)
                statuses.append(BudgetStatus(period, limit, spent, reserved))
        return statuses

    def spend_by_tenant(self) -> list[tuple[str, float]]:
        """Each tenant's total spend in the currency unit (for metrics, where floats are fine)."""
        query = select(BudgetAccount.tenant_id, BudgetAccount.spent).where(
            BudgetAccount.period == TOTAL
        )
        with self._db.session() as session:
            return [
                (tenant, float(Decimal(spent) * MICRO)) for tenant, spent in session.execute(query)
            ]

    def usage(self, tenant: Tenant, *, days: int) -> UsageReport:
        """What the tenant spent and made, by model and by day, over the last `days` UTC days
        (today included), read from the daily sums (`usage_daily`), never from the ledger."""
        today = as_utc(self._clock.now()).date()
        first = today - timedelta(days=days - 1)
        since = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        report = UsageReport(tenant_id=tenant.id, since=since, budgets=self.budgets(tenant))
        zero = {"spent": 0, "images": 0, "jobs": 0}
        by_model: dict[str, dict[str, int]] = defaultdict(lambda: dict(zero))
        by_day: dict[str, dict[str, int]] = defaultdict(lambda: dict(zero))
        with self._db.session() as session:
            rows = session.execute(
                USAGE_SINCE, {"tenant_id": tenant.id, "since": first.isoformat()}
            ).all()
        for row in rows:
            for bucket in (by_model[row.model], by_day[row.day]):
                bucket["spent"] += row.spent
                bucket["images"] += row.images
                bucket["jobs"] += row.jobs
            report.spent += row.spent
            report.images += row.images
            report.jobs += row.jobs
        report.by_model = dict(by_model)
        report.by_day = dict(sorted(by_day.items()))
        return report

    def _row(
        self,
        tenant_id: str,
        job_id: str,
        kind: str,
        amount: int,
        images: int,
        model: str,
        period: str,
    ) -> dict[str, Any]:
        """A ledger entry, as the row to insert."""
        return {
            "tenant_id": tenant_id,
            "job_id": job_id,
            "kind": kind,
            "amount": amount,
            "images": images,
            "model": model,
            "period": period,
            "created_at": self._clock.now(),
        }


def _changed(connection: Connection, statement: Update, values: dict[str, Any]) -> bool:
    """Run a conditional update of one row; whether it matched."""
    return connection.execute(statement, values).rowcount == 1


def _ensure_account(connection: Connection, tenant_id: str, period: str) -> bool:
    """Make the account if it is missing; True when it was missing (the caller tries again)."""
    if connection.execute(ACCOUNT, {"b_tenant": tenant_id, "b_period": period}).first():
        return False
    try:
        with connection.begin_nested():
            connection.execute(
                insert(BudgetAccount).values(
                    tenant_id=tenant_id, period=period, spent=0, reserved=0
                )
            )
    except IntegrityError:
        pass  # a concurrent request made it first
    return True
