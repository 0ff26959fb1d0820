with

source as (

    select * from {{ source('raw', 'users') }}

),

renamed as (

    select
        cast(id as {{ dbt.type_string() }}) as user_id,
        cast(plan_tier as {{ dbt.type_string() }}) as plan_tier,
        {{ to_utc_timestamp("signed_up_at") }} as signed_up_at,
        cast(country as {{ dbt.type_string() }}) as country_code

    from source

)

select * from renamed
