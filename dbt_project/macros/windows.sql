{#- D2, O1: where a run's window opens — the previous scheduled run's T. The DAGs fire on the shop's wall
    clock (09:00 America/Toronto every day), so the previous fire time is T less `hours` on that clock, not
    T less `hours` of elapsed time: on the day daylight saving time ends (2026-11-01) the daily run's
    window is 25 h long and on the day it starts 23 h, and consecutive windows meet on every day of the
    year. The clock is `reporting_timezone()` (var `reporting_timezone`, the shop's and the DAGs' zone).
    A time that does not exist on that clock (02:30 on the spring-forward night) is read as the time
    just after the change, so no instant falls between two windows. -#}
{% macro window_opening(hours, t=none) -%}
    ((({{ t or evaluation_time() }}) at time zone {{ reporting_timezone() }} - make_interval(hours => {{ hours }}))
    at time zone {{ reporting_timezone() }})
{%- endmacro %}
