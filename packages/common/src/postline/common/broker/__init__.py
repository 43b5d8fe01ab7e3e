"""RabbitMQ: the topology (declared in one place), confirmed publishing, typed consumers."""

from postline.common.broker.connection import Broker
from postline.common.broker.consumer import PoisonMessage
from postline.common.broker.errors import BrokerUnavailable
from postline.common.broker.events import Event, EventPublisher
from postline.common.broker.topology import Topology

__all__ = ["Broker", "BrokerUnavailable", "Event", "EventPublisher", "PoisonMessage", "Topology"]
