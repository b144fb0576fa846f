"""Realistic log lines written for these tests (formats as AWS documents them)."""

from __future__ import annotations

RID = "3f9b6c1e-8d2a-4b7f-9e01-5a6c7d8e9f10"

START = f"START RequestId: {RID} Version: $LATEST\n"
END = f"END RequestId: {RID}\n"
# Tab-separated as Lambda writes it, with the trailing tab and newline.
REPORT_COLD = (
    f"REPORT RequestId: {RID}\tDuration: 1234.56 ms\tBilled Duration: 1235 ms\tMemory Size: 256 MB\t"
    "Max Memory Used: 87 MB\tInit Duration: 412.03 ms\t\n"
)
REPORT_WARM_XRAY = (
    f"REPORT RequestId: {RID}\tDuration: 15.74 ms\tBilled Duration: 16 ms\tMemory Size: 128 MB\t"
    "Max Memory Used: 56 MB\t\n"
    "XRAY TraceId: 1-6745d1c2-0b1c2d3e4f5a6b7c8d9e0f1a\tSegmentId: 2b3c4d5e6f7a8b9c\t"
    "Sampled: true\t\n"
)
# Spaces instead of tabs (how the lines look once copied out of the console).
REPORT_SPACES = (
    f"REPORT RequestId: {RID}  Duration: 2.05 ms  Billed Duration: 3 ms  Memory Size: 1152 MB  "
    "Max Memory Used: 76 MB"
)
REPORT_TIMEOUT = (
    f"REPORT RequestId: {RID}\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\tMemory Size: 128 MB\t"
    "Max Memory Used: 71 MB\tStatus: timeout\n"
)
REPORT_TRUNCATED = f"REPORT RequestId: {RID}\tDuration: 8.10 ms\t"
INIT_START = (
    "INIT_START Runtime Version: python:3.12.v38\tRuntime Version ARN: "
    "arn:aws:lambda:eu-west-1::runtime:8a0f5c1e2d3b4a59687766554433221100ffeeddccbbaa998877665544332211\n"
)
TIMEOUT = f"2026-11-20T10:00:03.012Z {RID} Task timed out after 3.00 seconds\n\n"
PRINT = "processing 3 records\n"
PYTHON_INFO = f"[INFO]\t2026-11-20T10:00:00.120Z\t{RID}\tFound credentials in environment variables.\n"
PYTHON_ERROR_MULTILINE = (
    f"[ERROR]\t2026-11-20T10:00:00.250Z\t{RID}\tpayment declined\n"
    "Traceback (most recent call last):\n"
    '  File "/var/task/app.py", line 51, in charge\n'
    "    raise PaymentDeclined(order)\n"
    "app.PaymentDeclined: 4711\n"
)
UNHANDLED = (
    "[ERROR] Runtime.ImportModuleError: Unable to import module 'app': No module named 'requests'\n"
    "Traceback (most recent call last):"
)
NODE_INFO = f"2026-11-20T10:00:00.130Z\t{RID}\tINFO\tuser signed in\n"
POWERTOOLS = (
    '{"level":"INFO","location":"handler:42","message":"order accepted",'
    '"timestamp":"2021-05-03 11:47:12,494+0000","service":"orders","cold_start":true,'
    f'"function_name":"orders","function_memory_size":"128","function_request_id":"{RID}",'
    '"xray_trace_id":"1-6745d1c2-0b1c2d3e4f5a6b7c8d9e0f1a"}'
)
POWERTOOLS_DICT_MESSAGE = (
    '{"level":"WARNING","location":"handler:50","message":{"order":4711,"items":2},'
    '"timestamp":"2021-05-03 11:47:12,9+0100","service":"orders"}'
)
LAMBDA_JSON_REPORT = (
    '{"time":"2026-11-20T10:00:01.500Z","type":"platform.report","record":{"requestId":"'
    + RID
    + '","metrics":{"durationMs":120.5,"billedDurationMs":121,"memorySizeMB":128,'
    '"maxMemoryUsedMB":60,"initDurationMs":300.2},"status":"success"}}'
)
LAMBDA_JSON_APP = (
    '{"timestamp":"2026-11-20T10:00:00.300Z","level":"ERROR","message":"lookup failed",'
    f'"logger":"root","requestId":"{RID}"}}'
)
PYTHON_DICT_PRINT = "{'key': 'value'}\n"  # print(event): looks like JSON, is not

VPC_ACCEPT = (
    "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 "
    "1418530010 1418530070 ACCEPT OK"
)
VPC_REJECT = (
    "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 "
    "1418530010 1418530070 REJECT OK"
)
VPC_NODATA = "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA"
VPC_SKIPDATA = "2 123456789010 eni-11111111aaaaaaaaa - - - - - - - 1431280876 1431280934 - SKIPDATA"
