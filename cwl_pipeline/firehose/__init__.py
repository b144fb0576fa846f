"""Firehose source: objects a subscription filter's delivery stream wrote to S3.

* ``key_layout`` (pure): the delivery stream's S3 prefix with its ``!{...}`` expressions, read
  into the keys it writes and the times they name;
* ``windows`` (pure): which objects belong to which delivery window (by key and delivery time);
* ``read``: a range of delivery windows read and decoded into one
  :class:`~cwl_pipeline.load.objects.ObjectSetRead` for the load path;
* ``assets`` and ``sensor`` (Dagster): the window-partitioned multi-asset and the sensor that
  requests a window when its objects change.
"""
