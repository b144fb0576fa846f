"""The examples of AWS's filter pattern syntax page, each with the result the page gives for it.

All of the page's examples as AWS's documentation repository holds it, and those of its newer
sections (regular expressions, JSON) and of AWS CDK's pattern builders that the stored copies of
the current pages show.

Sources:

* PAGE: "Filter pattern syntax for metric filters, subscription filters, and filter log events",
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html; its
  examples as published in AWS's documentation repository
  (github.com/awsdocs/amazon-cloudwatch-logs-user-guide, doc_source/FilterAndPatternSyntax.md,
  then titled "Filter and Pattern Syntax").
* REGEX: the page's regex section, "Supported regular expressions (regex) syntax",
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/regex-expressions.html.
* JSON_PAGE: "Using filter patterns to match terms in JSON log events",
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/matching-terms-json-log-events.html.
* CDK: aws-cdk-lib ``aws_logs.FilterPattern`` (https://docs.aws.amazon.com/cdk/api/v2/docs/
  aws-cdk-lib.aws_logs.FilterPattern.html): ``anyTermGroup(["ERROR", "MainThread"], ["WARN",
  "Deadlock"])`` writes ``?"ERROR" "MainThread" ?"WARN" "Deadlock"``, and ``JsonPattern``'s example
  ``regexValue("$.message", "=", "bind: address already in use")`` writes
  ``$.message = %bind: address already in use%``.
"""

from __future__ import annotations

import json

import pytest

from cwl_pipeline.core.filter_patterns import FilterPatternError, compile_filter_pattern

# PAGE, "JSON Metric Filter Examples": the event every filter of that list matches.
TRAIL = json.dumps(
    {
        "eventType": "UpdateTrail",
        "sourceIPAddress": "111.111.111.111",
        "arrayKey": ["value", "another value"],
        "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
        "SomeObject": None,
        "ThisFlag": True,
    }
)
# PAGE, "JSON Compound Conditions".
USERS = json.dumps(
    {
        "user": {"id": 1, "email": "John.Stiles@example.com"},
        "users": [{"id": 2, "email": "John.Doe@example.com"}, {"id": 3, "email": "Jane.Doe@example.com"}],
        "actions": ["GET", "PUT", "DELETE"],
        "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]],
    }
)
# PAGE, "OR Pattern Matching": log events 1, 2 and 3.
OR_1, OR_2, OR_3 = "ERROR WARN message", "ERROR message", "WARN message"
# PAGE, "Using Metric Filters to Extract Values from Space-Delimited Log Events".
APACHE = [
    '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534',
    '127.0.0.1 - frank [10/Oct/2000:13:35:22 -0700] "GET /apache_pb.gif HTTP/1.0" 500 5324',
    '127.0.0.1 - frank [10/Oct/2000:13:50:35 -0700] "GET /apache_pb.gif HTTP/1.0" 200 4355',
]
# The same section's "Example log event for the filter" (the page shows its quotes JSON-escaped).
APACHE_404 = '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534'

DOCUMENTED = [
    # PAGE, "Matching Terms in Log Events", examples 1-3.
    ("ERROR", "[ERROR] A fatal exception has occurred", True),
    ("ERROR", "Exiting with ERRORCODE: -1", True),
    ('"ERROR" - "Exiting"', "Exiting with ERRORCODE: -1", False),
    ('"ERROR" - "Exiting"', "[ERROR] A fatal exception has occurred", True),
    ("ERROR Exception", "[ERROR] Caught IllegalArgumentException", True),
    ("ERROR Exception", "[ERROR] Unhandled Exception", True),
    ("Failed to process the request", "[WARN] Failed to process the request", True),
    ("Failed to process the request", "[ERROR] Unable to continue: Failed to process the request", True),
    # PAGE, "OR Pattern Matching", text.
    *[("ERROR", m, m in (OR_1, OR_2)) for m in (OR_1, OR_2, OR_3)],
    *[("?ERROR ?WARN", m, True) for m in (OR_1, OR_2, OR_3)],
    *[("ERROR WARN", m, m == OR_1) for m in (OR_1, OR_2, OR_3)],
    *[("ERROR -WARN", m, m == OR_2) for m in (OR_1, OR_2, OR_3)],
    # PAGE, "OR Pattern Matching", space-delimited.
    *[("[w1=ERROR, w2]", m, m == OR_2) for m in (OR_1, OR_2, OR_3)],
    *[("[w1=ERROR || w1=WARN, w2]", m, m in (OR_2, OR_3)) for m in (OR_1, OR_2, OR_3)],
    # PAGE, "OR Pattern Matching", JSON.
    ("{$.foo = bar}", '{"foo": "bar"}', True),
    ("{$.foo = bar}", '{"foo": "baz"}', False),
    ("{$.foo = baz }", '{"foo": "bar"}', False),
    ("{$.foo = baz }", '{"foo": "baz"}', True),
    ("{$.foo = bar || $.foo = baz }", '{"foo": "bar"}', True),
    ("{$.foo = bar || $.foo = baz }", '{"foo": "baz"}', True),
    # PAGE, "JSON Metric Filter Examples": "The following filters would match".
    ('{ $.eventType = "UpdateTrail" }', TRAIL, True),
    ("{ $.sourceIPAddress != 123.123.* }", TRAIL, True),
    ('{ $.arrayKey[0] = "value" }', TRAIL, True),
    ("{ $.objectList[1].id = 2 }", TRAIL, True),
    ("{ $.SomeObject IS NULL }", TRAIL, True),
    ("{ $.SomeOtherObject NOT EXISTS }", TRAIL, True),
    ("{ $.ThisFlag IS TRUE }", TRAIL, True),
    # PAGE, "STRING": "*Event will match PutEvent and GetEvent. Event* will match EventId and
    # EventName. Ev*ent will only match the actual string Ev*ent."
    ("{ $.eventName = *Event }", '{"eventName": "PutEvent"}', True),
    ("{ $.eventName = *Event }", '{"eventName": "GetEvent"}', True),
    ("{ $.eventName = Event* }", '{"eventName": "EventId"}', True),
    ("{ $.eventName = Event* }", '{"eventName": "EventName"}', True),
    ("{ $.eventName = Ev*ent }", '{"eventName": "Ev*ent"}', True),
    ("{ $.eventName = Ev*ent }", '{"eventName": "EvXent"}', False),
    # ... "If arrayKey is not an array this will be false"; "If objectList is not an array ...".
    ('{ $.arrayKey[0] = "value" }', '{"arrayKey": "value"}', False),
    ("{ $.objectList[1].id = 2 }", '{"objectList": {"1": {"id": 2}}}', False),
    # PAGE, "JSON Compound Conditions", its four examples on its document.
    ('{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }', USERS, True),
    ('{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }', USERS, False),
    (
        '{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch '
        "&& $.actions[2] = nomatch }",
        USERS,
        True,
    ),
    (
        '{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch) '
        "&& $.actions[2] = nomatch }",
        USERS,
        False,
    ),
    # PAGE, "JSON Special Considerations": a selector on an array matches neither = nor !=.
    ("{$.users = 1}", '{"users": [1, 2, 3]}', False),
    ("{$.users != 1}", '{"users": [1, 2, 3]}', False),
    # PAGE, "Space-Delimited Log Events": the field lists, then the conditions, on its three events.
    *[("[ip, user, username, timestamp, request, status_code, bytes]", m, True) for m in APACHE],
    *[("[..., status_code, bytes]", m, True) for m in APACHE],
    *[("[ip, user, ..., status_code, bytes]", m, True) for m in APACHE],
    *[("[ip, user, ...]", m, True) for m in APACHE],
    *[("[ip, user, username, timestamp, request, status_code, bytes > 1000]", m, True) for m in APACHE],
    *[
        ("[ip, user, username, timestamp, request, status_code = 200, bytes]", m, " 200 " in m)
        for m in APACHE
    ],
    *[("[ip, user, username, timestamp, request, status_code = 4*, bytes]", m, False) for m in APACHE],
    *[
        ("[ip, user, username, timestamp, request = *html*, status_code = 4*, bytes]", m, False)
        for m in APACHE
    ],
    *[
        ("[ip, user, username, timestamp, request, status_code = 4* && status_code != 403, bytes]", m, False)
        for m in APACHE
    ],
    ("[..., request=*.html*, status_code=4*,]", APACHE_404, True),
    ("[..., request=*.html*, status_code=4*,]", APACHE[0], False),
    # PAGE, "Publishing Numerical Values Found in Log Entries".
    ("{ $.latency = * }", '{"latency": 50, "requestType": "GET"}', True),
    ("{ $.latency = * }", '{"requestType": "GET"}', False),
    # REGEX: %AUTHORIZED% and the operator examples.
    ("%AUTHORIZED%", "[ERROR 401] UNAUTHORIZED REQUEST", True),
    ("%AUTHORIZED%", "[SUCCESS 200] AUTHORIZED REQUEST", True),
    ("%^[hc]at%", "hat", True),
    ("%^[hc]at%", "cat", True),
    ("%^[hc]at%", "that", False),
    ("%[hc]at$%", "that", True),
    ("%colou?r%", "color", True),
    ("%colou?r%", "colour", True),
    ("%a{3,5}%", "aaa", True),
    ("%a{3,5}%", "aa", False),
    (r"%\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}%", "client 10.0.12.7 refused", True),
    ("%[Ee]rror|[Ff]ail%", "request fail", True),
    # JSON_PAGE's introduction and CDK's JsonPattern example: a regex value inside a JSON pattern.
    ('{ $.eventType = "UpdateTrail" }', '{"eventType": "GetTrail"}', False),
    (
        "{ $.message = %bind: address already in use% }",
        '{"message": "listen tcp :80: bind: address already in use"}',
        True,
    ),
    ("{ $.message = %bind: address already in use% }", '{"message": "listening on :80"}', False),
    # CDK anyTermGroup: ERROR and MainThread, or WARN and Deadlock.
    ('?"ERROR" "MainThread" ?"WARN" "Deadlock"', "ERROR in MainThread", True),
    ('?"ERROR" "MainThread" ?"WARN" "Deadlock"', "WARN Deadlock detected", True),
    ('?"ERROR" "MainThread" ?"WARN" "Deadlock"', "ERROR in worker-3", False),
    ('?"ERROR" "MainThread" ?"WARN" "Deadlock"', "WARN from MainThread", False),
]

# PAGE, "Numeric Comparisons": the examples, which the page gives without an event; each is read
# and evaluated on an event either side of its bound.
NUMERIC = [
    ("{ $.latency >= 500 }", '{"latency": 500}', '{"latency": 499}'),
    ("{ $.numbers[0] < 10e3 }", '{"numbers": [9999]}', '{"numbers": [10000]}'),
    ("{ $.numbers[0] < 10e-3 }", '{"numbers": [0.001]}', '{"numbers": [0.01]}'),
    ("{ $.processes[4].averageRuntime <= 55.5 }", '{"processes": [{}, {}, {}, {}, {"averageRuntime": 55.5}]}',
     '{"processes": [{}, {}, {}, {}, {"averageRuntime": 55.6}]}'),
    ("{ $.errorCode = 400 }", '{"errorCode": 400}', '{"errorCode": 500}'),
    ("{ $.errorCode != 500 }", '{"errorCode": 400}', '{"errorCode": 500}'),
    ("{ $.latency > +1000 }", '{"latency": 1001}', '{"latency": 1000}'),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "message", "expected"), DOCUMENTED)
def test_documented_examples(pattern: str, message: str, expected: bool) -> None:
    assert compile_filter_pattern(pattern)(message) is expected


@pytest.mark.parametrize(("pattern", "inside", "outside"), NUMERIC)
def test_documented_numeric_comparisons(pattern: str, inside: str, outside: str) -> None:
    matcher = compile_filter_pattern(pattern)
    assert (matcher(inside), matcher(outside)) == (True, False)


@pytest.mark.parametrize(
    ("pattern", "position", "what"),
    [
        # REGEX: "%something!% would be rejected because '!' is not supported"; "The ( and )
        # operators are not supported".
        ("%something!%", 10, "'!'"),
        ("%(abc)%", 1, "'('"),
        # A lone '-' or '?' with no term after it: refused, never read as a term.
        ("ERROR -", 6, "'-' with no term"),
        ("ERROR ? ", 6, "'?' with no term"),
        ("ERROR -?WARN", 7, "'?' after '-'"),
        ("%a% %b%", 3, "text after the regex"),
        # PAGE, "STRING": "Strings that have unicode and other characters such as '@', '$', '\\'
        # etc. must be enclosed in double quotes".
        ("{ $.user = bob@example.com }", 14, "'@' in an unquoted value"),
        # Plain terms before the first alternative: which group they belong to is not defined.
        ("ERROR ?WARN", 0, "before the first '?term'"),
        ('"unbalanced', 0, "unbalanced quote"),
        ("{ $.a = 1 ", 9, "does not end with '}'"),
        ("{ $.a ~ 1 }", 6, "no comparison operator"),
        ("{ $.a > abc }", 8, "> needs a number"),
        ("{ $[0] = 1 }", 2, "no selector"),
        ("{ $.a = %x% || $.b = %y% || $.c = %z% }", 34, "more than 2 regexes"),
        ("[a, b", 5, "does not end with ']'"),
        ("[a, ..., b, ...]", 12, "a second '...'"),
        # PAGE's "[ip, user, username, timestamp, request, status_code = 4* && bytes > 1000]" puts a
        # condition on `bytes`, which the pattern gives no position; the page shows no result for it.
        ("[ip, user, username, timestamp, request, status_code = 4* && bytes > 1000]", 61, "'bytes'"),
        # PAGE's "[w1=!ERROR&&w1=!WARN, w2]": `=!` is no operator, and the page's result for it
        # (it "matches ERROR WARN message", a three-field event for a two-field pattern) contradicts
        # its own [w1=ERROR, w2] example; refused rather than guessed.
        ("[w1=!ERROR&&w1=!WARN, w2]", 4, "'!'"),
    ],
)
def test_unreadable_patterns_are_refused_with_the_position(pattern: str, position: int, what: str) -> None:
    with pytest.raises(FilterPatternError) as caught:
        compile_filter_pattern(pattern)
    assert what in str(caught.value)
    assert f"at position {position}" in str(caught.value)
