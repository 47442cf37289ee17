{#- F5 retargeting: the window of decision moments a run re-checks (int_retargeting_candidates).

    A candidate at moment M is decided from what is known about M (the customer's address, consent and
    opt-outs up to M, whether the run at M was a dry run or a holdout). A run at T re-checks the moments in
    (T - `retargeting_recheck_hours`, T] (var, default 48, for data that arrives late) and always the latest
    moment it holds (the previous run's T: its candidates came from that run's decisions, before the sender
    wrote them as sent, dry run or holdout), and keeps the earlier ones as they were settled, so a day
    costs the day's decisions, not the whole message history (4.6 s at day 4 of the scale-1 bench, growing
    by a second a day, before). An opt-out settled too late still ends the membership (E4,
    int_retargeting_memberships).
    A replay of an earlier T re-checks from T - window and drops the later moments; the next run then
    re-checks from the latest moment still held, so nothing between is skipped (O2).
    Written as a constant at execution, read before the pre-hook deletes (compiling comes first). -#}
{% macro retargeting_recheck_from() -%}
    {%- set window_sql -%}
        {{ evaluation_time() }} - make_interval(hours => {{ var('retargeting_recheck_hours', 48) | int }})
    {%- endset -%}
    {%- if is_incremental() and execute and adapter is defined -%}
        {%- set since_sql -%}
            select floor(extract(epoch from least(
                {{ window_sql }},
                coalesce(max(candidate_at) - interval '1 second', '-infinity'::timestamptz)
            )))::text
            from {{ this }}
        {%- endset -%}
        {%- set found = run_query(since_sql) -%}
        {%- set since = found.rows[0][0] -%}
        {%- if since in (none, '-Infinity') -%}
            '-infinity'::timestamptz
        {%- else -%}
            to_timestamp({{ since }})
        {%- endif -%}
    {%- elif is_incremental() -%}
        ({{ window_sql }})
    {%- else -%}
        '-infinity'::timestamptz
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of int_retargeting_candidates: the moments the run re-checks are written anew, inside the
    model's transaction (readers never see them missing). -#}
{% macro retargeting_delete_recheck_window() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where candidate_at > {{ retargeting_recheck_from() }}
    {%- endif -%}
{%- endmacro %}
