-- A4: incremental lift of each campaign against its holdout (E8), as of T, per period: each report day,
-- the last 7 and 28 days, and all time.
-- - Population: the campaign's first-step recipient decisions (where the holdout is drawn), dry runs left
--   out. Treated: every decision not held out, whether or not the send succeeded (intention to treat: a
--   failed or bounced send is not random, dropping it would bias the comparison); control: the held-out
--   decisions (ops.messages `skipped`/`holdout`).
-- - Conversion, the same for both groups: a completed order of the customer placed within the lift window
--   after decided_at, [decided_at, decided_at + lift_window_hours] (attribution window plus the delays of
--   the later steps). Only decisions whose window has closed at T are counted, so a day's figures do not
--   move once complete.
-- - Lift: absolute p_t - p_c with a 95 % Wald interval (unpooled normal approximation of a difference of
--   proportions); relative p_t / p_c - 1 with a 95 % interval from the log of the risk ratio (Katz).
-- - has_enough_data: each group has at least `lift_min_group_size` (30) decisions and at least
--   `lift_min_outcomes` (5) conversions and as many non-conversions (the normal approximation's rule of
--   thumb); otherwise lift_status is `not_enough_data` and the intervals are null.
{%- set min_group = var('lift_min_group_size', 30) | int %}
{%- set min_outcomes = var('lift_min_outcomes', 5) | int %}
{%- set z = 1.959964 %}

with campaigns as (
    select * from {{ ref('int_attribution_campaigns') }}
),

entries as (
    select
        messages.message_id,
        messages.campaign,
        messages.customer_id,
        messages.decided_at,
        messages.report_date,
        messages.is_held_out,
        coalesce(campaigns.lift_window_hours, messages.attribution_window_hours) as lift_window_hours
    from {{ ref('int_recovery_messages') }} as messages
    left join campaigns on messages.campaign = campaigns.campaign
    where messages.step = 1
),

matured as (
    select *
    from entries
    where decided_at + make_interval(secs => lift_window_hours * 3600) <= {{ evaluation_time() }}
),

orders as (
    select
        customer_id,
        placed_at,
        total
    from {{ ref('stg_shop__orders') }}
    where
        status = 'completed'
        and customer_id is not null
        and placed_at <= {{ evaluation_time() }}
),

outcomes as (
    select
        matured.message_id,
        matured.campaign,
        matured.report_date,
        matured.is_held_out,
        max(matured.lift_window_hours) as lift_window_hours,
        count(orders.customer_id) > 0 as is_converted,
        coalesce(sum(orders.total), 0) as revenue
    from matured
    left join orders
        on
            matured.customer_id = orders.customer_id
            and matured.decided_at <= orders.placed_at
            and matured.decided_at + make_interval(secs => matured.lift_window_hours * 3600) >= orders.placed_at
    group by matured.message_id, matured.campaign, matured.report_date, matured.is_held_out
),

periods as (
    select
        outcomes.*,
        'day' as period,
        outcomes.report_date as period_start,
        outcomes.report_date as period_end
    from outcomes
    {%- for name, days in [('last_7_days', 7), ('last_28_days', 28)] %}
    union all
    select
        outcomes.*,
        '{{ name }}' as period,
        {{ report_date(evaluation_time()) }} - {{ days - 1 }} as period_start,
        {{ report_date(evaluation_time()) }} as period_end
    from outcomes
    where outcomes.report_date >= {{ report_date(evaluation_time()) }} - {{ days - 1 }}
    {%- endfor %}
    union all
    select
        outcomes.*,
        'all_time' as period,
        min(outcomes.report_date) over (partition by outcomes.campaign) as period_start,
        {{ report_date(evaluation_time()) }} as period_end
    from outcomes
),

groups as (
    select
        campaign,
        period,
        period_start,
        period_end,
        max(lift_window_hours) as lift_window_hours,
        count(*) filter (where not is_held_out) as treated_recipients,
        count(*) filter (where not is_held_out and is_converted) as treated_conversions,
        coalesce(sum(revenue) filter (where not is_held_out), 0) as treated_revenue,
        count(*) filter (where is_held_out) as holdout_recipients,
        count(*) filter (where is_held_out and is_converted) as holdout_conversions,
        coalesce(sum(revenue) filter (where is_held_out), 0) as holdout_revenue
    from periods
    group by campaign, period, period_start, period_end
),

rates as (
    select
        groups.*,
        groups.treated_conversions::numeric / nullif(groups.treated_recipients, 0) as p_t,
        groups.holdout_conversions::numeric / nullif(groups.holdout_recipients, 0) as p_c,
        (
            groups.treated_recipients >= {{ min_group }}
            and groups.holdout_recipients >= {{ min_group }}
            and groups.treated_conversions >= {{ min_outcomes }}
            and groups.treated_recipients - groups.treated_conversions >= {{ min_outcomes }}
            and groups.holdout_conversions >= {{ min_outcomes }}
            and groups.holdout_recipients - groups.holdout_conversions >= {{ min_outcomes }}
        ) as has_enough_data
    from groups
),

intervals as (
    select
        rates.*,
        rates.p_t - rates.p_c as absolute_lift,
        rates.p_t / nullif(rates.p_c, 0) - 1 as relative_lift,
        case
            when rates.has_enough_data
                then
                    {{ z }} * sqrt(
                        rates.p_t * (1 - rates.p_t) / rates.treated_recipients
                        + rates.p_c * (1 - rates.p_c) / rates.holdout_recipients
                    )
        end as absolute_margin,
        case
            when rates.has_enough_data
                then
                    {{ z }} * sqrt(
                        1.0 / rates.treated_conversions - 1.0 / rates.treated_recipients
                        + 1.0 / rates.holdout_conversions - 1.0 / rates.holdout_recipients
                    )
        end as log_ratio_margin
    from rates
),

final as (
    select
        campaign,
        period,
        period_start,
        period_end,
        lift_window_hours,
        treated_recipients::integer as treated_recipients,
        treated_conversions::integer as treated_conversions,
        round(p_t, 6) as treated_conversion_rate,
        treated_revenue,
        holdout_recipients::integer as holdout_recipients,
        holdout_conversions::integer as holdout_conversions,
        round(p_c, 6) as holdout_conversion_rate,
        holdout_revenue,
        round(absolute_lift, 6) as absolute_lift,
        round(absolute_lift - absolute_margin, 6) as absolute_lift_ci_low,
        round(absolute_lift + absolute_margin, 6) as absolute_lift_ci_high,
        round(relative_lift, 6) as relative_lift,
        -- has_enough_data guarantees conversions in both groups, so the log is defined
        case
            when has_enough_data then round(exp(ln(p_t / p_c) - log_ratio_margin) - 1, 6)
        end as relative_lift_ci_low,
        case
            when has_enough_data then round(exp(ln(p_t / p_c) + log_ratio_margin) - 1, 6)
        end as relative_lift_ci_high,
        round(absolute_lift * treated_recipients, 2) as incremental_conversions,
        round(
            (treated_revenue / nullif(treated_recipients, 0) - holdout_revenue / nullif(holdout_recipients, 0))
            * treated_recipients,
            2
        ) as incremental_revenue,
        has_enough_data,
        case
            when not has_enough_data then 'not_enough_data'
            when absolute_lift - absolute_margin > 0 then 'positive'
            when absolute_lift + absolute_margin < 0 then 'negative'
            else 'not_significant'
        end as lift_status,
        {{ evaluation_time() }} as evaluated_at
    from intervals
)

select * from final
