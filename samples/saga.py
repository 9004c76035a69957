"""A saga: book a car, a hotel and a flight; if a step fails, undo the ones done, newest first.

Every booking activity has a compensating activity. The workflow records the
compensation before it runs the step (a step may have taken effect even if it
failed), and on failure runs the compensations in reverse order, then fails
with the original error. Run against ``make dev``: ``python -m samples.saga``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from kronicle import activity, workflow
from kronicle.client import Client
from kronicle.common import RetryPolicy
from kronicle.exceptions import ActivityError, ApplicationError, WorkflowFailureError
from kronicle.worker import Worker
from samples._common import run_sample, unique_id

TASK_QUEUE = "samples-saga"


@dataclass
class Trip:
    traveller: str
    destination: str


@activity.defn
async def book_car(trip: Trip) -> str:
    return f"car for {trip.traveller}"


@activity.defn
async def book_hotel(trip: Trip) -> str:
    return f"hotel in {trip.destination}"


@activity.defn
async def book_flight(trip: Trip) -> str:
    if trip.destination == "Atlantis":
        raise ApplicationError(f"no flights to {trip.destination}", non_retryable=True, type="NoSuchDestination")
    return f"flight to {trip.destination}"


@activity.defn
async def cancel_car(trip: Trip) -> str:
    return f"cancelled car for {trip.traveller}"


@activity.defn
async def cancel_hotel(trip: Trip) -> str:
    return f"cancelled hotel in {trip.destination}"


@activity.defn
async def cancel_flight(trip: Trip) -> str:
    return f"cancelled flight to {trip.destination}"


ACTIVITIES = [book_car, book_hotel, book_flight, cancel_car, cancel_hotel, cancel_flight]
_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=3),
}


@workflow.defn
class BookTrip:
    @workflow.run
    async def run(self, trip: Trip) -> list[str]:
        steps: list[tuple[Callable[[Trip], Awaitable[str]], Callable[[Trip], Awaitable[str]]]] = [
            (book_car, cancel_car),
            (book_hotel, cancel_hotel),
            (book_flight, cancel_flight),
        ]
        compensations: list[Callable[[Trip], Awaitable[str]]] = []
        booked: list[str] = []
        try:
            for step, undo in steps:
                compensations.append(undo)
                booked.append(await workflow.execute_activity(step, trip, **_OPTIONS))
        except ActivityError as err:
            undone = [await workflow.execute_activity(undo, trip, **_OPTIONS) for undo in reversed(compensations)]
            workflow.logger.info("trip failed, compensated: %s", undone)
            raise ApplicationError(f"trip not booked: {err.cause}", *undone, type="TripNotBooked") from err
        return booked


async def main(client: Client, *, task_queue: str = TASK_QUEUE) -> list[str]:
    async with Worker(client, task_queue=task_queue, workflows=[BookTrip], activities=ACTIVITIES):
        booked: list[str] = await client.execute_workflow(
            BookTrip.run, Trip("Ada", "Lisbon"), id=unique_id("saga-ok"), task_queue=task_queue
        )
        try:
            await client.execute_workflow(
                BookTrip.run, Trip("Grace", "Atlantis"), id=unique_id("saga-fail"), task_queue=task_queue
            )
        except WorkflowFailureError as err:
            assert isinstance(err.cause, ApplicationError)
            return [*booked, f"second trip: {err.cause.message}; compensations: {list(err.cause.details)}"]
        raise RuntimeError("the trip to Atlantis should have failed")


if __name__ == "__main__":
    run_sample(main)
