"""Quality assessment: the QA documents every job writes (schema in spectropol/schemas), the
messages that carry them to Kafka, and the aggregation of a run's documents or messages."""
