"""The local stack: AWS (moto server) and BigQuery (bqemulator) as local processes, and a demo producer."""
